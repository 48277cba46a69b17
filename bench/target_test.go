package bench

import (
	"slices"
	"strings"
	"testing"
)

func TestTargetFromEnvAndValidate(t *testing.T) {
	var tg Target
	tg.LoadEnv(map[string]string{"REVERB_APP_ID": "1", "REVERB_APP_KEY": "k", "REVERB_APP_SECRET": "s",
		"REVERB_HOST": "127.0.0.1", "REVERB_PORT": "8080", "REVERB_SCHEME": "https", "REVERB_SERVER_PATH": "/ws/"})
	if tg.URL != "wss://127.0.0.1:8080/ws" {
		t.Fatalf("url %q", tg.URL)
	}
	e, err := tg.endpoint()
	if err != nil {
		t.Fatal(err)
	}
	if !e.tls || !e.loopback || e.httpBase != "https://127.0.0.1:8080" || e.prefix != "/ws" ||
		e.wsURL != "wss://127.0.0.1:8080/ws/app/k?protocol=7&client=frontdoor-bench&version=1.0&flash=false" {
		t.Fatalf("endpoint %+v", e)
	}
	// --node: clients take the URL and every node in turn, each with the same key and query.
	tg.Nodes = []string{"wss://127.0.0.2:8081/ws", "ws://[::1]"}
	if e, err = tg.endpoint(); err != nil {
		t.Fatal(err)
	}
	if want := []string{e.wsURL, "wss://127.0.0.2:8081/ws/app/k?protocol=7&client=frontdoor-bench&version=1.0&flash=false",
		"ws://[::1]:80/app/k?protocol=7&client=frontdoor-bench&version=1.0&flash=false"}; !slices.Equal(e.wsURLs, want) {
		t.Fatalf("wsURLs %q\nwant %q", e.wsURLs, want)
	}
	flagFirst := Target{URL: "ws://h:1", Key: "mine"}
	flagFirst.LoadEnv(map[string]string{"REVERB_APP_KEY": "env", "REVERB_HOST": "other"})
	if flagFirst.Key != "mine" || flagFirst.URL != "ws://h:1" {
		t.Fatalf("flags overridden by .env: %+v", flagFirst)
	}
	for _, tc := range []struct {
		t   Target
		key string
	}{
		{Target{}, "url"},
		{Target{URL: "http://x", AppID: "1", Key: "k", Secret: "s"}, "url"},
		{Target{URL: "ws://x", Key: "k", Secret: "s"}, "app-id"},
		{Target{URL: "ws://x", AppID: "1", Key: "k"}, "secret"},
		{Target{URL: "ws://x?a=1", AppID: "1", Key: "k", Secret: "s"}, "url"},
		{Target{URL: "ws://x", AppID: "1", Key: "k", Secret: "s", ServerPIDs: []int{-1}}, "server-pid"},
		{Target{URL: "ws://x", AppID: "1", Key: "k", Secret: "s", HTTPURL: "ftp://x"}, "http-url"},
		{Target{URL: "ws://x", AppID: "1", Key: "k", Secret: "s", Nodes: []string{"http://y:1"}}, "node"},
		{Target{URL: "ws://x", AppID: "1", Key: "k", Secret: "s", Nodes: []string{"ws://y:1/?q"}}, "node"},
	} {
		err := tc.t.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), tc.key+":") {
			t.Errorf("%+v: error %v, want one naming %s", tc.t, err, tc.key)
		}
	}
}
