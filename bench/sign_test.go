package bench

import (
	"net/url"
	"strings"
	"testing"
)

// Worked examples from the protocol spec, § 10.
var (
	credA = signer{appID: "3", key: "278d425bdf160c739803", secret: "7ad3773142a6692b25b8"}
	credB = signer{appID: "my-app-id", key: "my-app-key", secret: "my-app-secret"}
)

func sigOf(t *testing.T, q string) string {
	t.Helper()
	v, err := url.ParseQuery(q)
	if err != nil {
		t.Fatalf("query %q: %v", q, err)
	}
	return v.Get("auth_signature")
}

func TestAPISignatureSpecExamples(t *testing.T) {
	tests := []struct {
		name         string
		s            signer
		method, path string
		params       url.Values
		body         string
		ts           int64
		want         string
	}{
		{"10.1 events", credA, "POST", "/apps/3/events", nil,
			`{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}`, 1353088179,
			"da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"},
		{"10.2 channels", credA, "GET", "/apps/3/channels",
			url.Values{"filter_by_prefix": {"presence-"}, "info": {"user_count"}}, "", 1353088179,
			"16819168891cb5dfd72b5c7a5d3d602605b26c6ba1930033b5e2eeeb65010291"},
		{"10.2 decoded comma", credA, "GET", "/apps/3/channels/presence-foobar",
			url.Values{"info": {"user_count,subscription_count"}}, "", 1353088179,
			"377ee9260ea002a70c0d40cd887d55cb36db9f7f821297f5efacbcce66be356d"},
		{"10.3 batch", credB, "POST", "/apps/my-app-id/batch_events", nil,
			`{"batch":[{"name":"OrderShipped","channel":"private-orders.1","data":"{\"id\":1}"},{"name":"OrderShipped","channel":"orders","data":"{\"id\":1}","socket_id":"123.456"}]}`,
			1700000000, "7ca904e8f602e06ce8cb4a14f14b5c523adaa94f44f489713e0b792a72269ec5"},
		{"10.3 terminate", credB, "POST", "/apps/my-app-id/users/42/terminate_connections", nil, `{}`,
			1700000000, "c6dbec93ca8377b53a16ccf5b04403c21dc7c74d97e0b6ca6560e8c6d91e3c1b"},
		{"10.3 users", credB, "GET", "/apps/my-app-id/channels/presence-room.1/users", nil, "",
			1700000000, "9d19b3d1abbc7060d085980218ae5da976cf846ae342be526057fd6c81fd8495"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := tt.s.apiQuery(tt.method, tt.path, tt.params, []byte(tt.body), tt.ts)
			if got := sigOf(t, q); got != tt.want {
				t.Fatalf("signature %s, want %s (query %s)", got, tt.want, q)
			}
			if tt.body == "" && strings.Contains(q, "body_md5") {
				t.Fatalf("body_md5 sent for an empty body: %s", q)
			}
		})
	}
}

func TestAPIQueryEscapesValues(t *testing.T) {
	q := credA.apiQuery("GET", "/apps/3/channels/presence-foobar", url.Values{"Info": {"user_count,subscription_count"}}, nil, 1353088179)
	if !strings.Contains(q, "info=user_count%2Csubscription_count") {
		t.Fatalf("value not escaped or key not lower-cased: %s", q)
	}
	if sigOf(t, q) != "377ee9260ea002a70c0d40cd887d55cb36db9f7f821297f5efacbcce66be356d" {
		t.Fatalf("upper-case key changed the signature: %s", q)
	}
}

func TestChannelAuthSpecExamples(t *testing.T) {
	tests := []struct{ channel, data, want string }{
		{"private-foobar", "", "58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"},
		{"presence-foobar", `{"user_id":10,"user_info":{"name":"Mr. Channels"}}`, "31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80"},
		{"presence-foobar", `{"user_id":10,"user_info":{"name":"Mr. Pusher"}}`, "afaed3695da2ffd16931f457e338e6c9f2921fa133ce7dac49f529792be6304c"},
		{"private-encrypted-foo", "", "e85caab4331194145d44feae15aea9539ea50631afacbc593a9555ceadc42357"},
	}
	for _, tt := range tests {
		if got := credA.channelAuth("1234.1234", tt.channel, tt.data); got != credA.key+":"+tt.want {
			t.Errorf("%s %s: got %s", tt.channel, tt.data, got)
		}
	}
}
