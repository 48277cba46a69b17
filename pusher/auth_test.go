package pusher

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

// The worked examples of pusher-protocol.md §10, computed twice with independent tools.
const (
	keyA    = "278d425bdf160c739803"
	secretA = "7ad3773142a6692b25b8"
)

func TestAPISignatureDocumentedExample(t *testing.T) { // §10.1
	body := []byte(`{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}`)
	if got := bodyMD5(body); got != "ec365a775a4cd0599faeb73354201b6f" {
		t.Fatalf("body_md5 = %s", got)
	}
	q := SignAPIRequest(keyA, secretA, "POST", "/apps/3/events", nil, body, time.Unix(1353088179, 0))
	if got := q.Get("auth_signature"); got != "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c" {
		t.Fatalf("signature = %s", got)
	}
	if err := verifyAPIRequest(keyA, secretA, "POST", "/apps/3/events", q, body, time.Unix(1353088179+599, 0)); err != nil {
		t.Fatal(err)
	}
}

func TestAPISignatureGETExamples(t *testing.T) { // §10.2
	q := url.Values{"filter_by_prefix": {"presence-"}, "info": {"user_count"}}
	s := SignAPIRequest(keyA, secretA, "GET", "/apps/3/channels", q, nil, time.Unix(1353088179, 0))
	if got := s.Get("auth_signature"); got != "16819168891cb5dfd72b5c7a5d3d602605b26c6ba1930033b5e2eeeb65010291" {
		t.Fatalf("signature = %s", got)
	}
	if s.Has("body_md5") {
		t.Fatal("body_md5 sent for an empty body")
	}
	q = url.Values{"info": {"user_count,subscription_count"}}
	s = SignAPIRequest(keyA, secretA, "GET", "/apps/3/channels/presence-foobar", q, nil, time.Unix(1353088179, 0))
	if got := s.Get("auth_signature"); got != "377ee9260ea002a70c0d40cd887d55cb36db9f7f821297f5efacbcce66be356d" {
		t.Fatalf("signature = %s", got)
	}
	// Key casing: lower-cased key, decoded value.
	got := apiStringToSign("GET", "/x", url.Values{"Name": {"Something else"}, "auth_key": {"foo"}})
	if !strings.HasSuffix(got, "auth_key=foo&name=Something else") {
		t.Fatalf("string to sign = %q", got)
	}
}

func TestAPISignatureLaravelExamples(t *testing.T) { // §10.3
	ts := time.Unix(1700000000, 0)
	cases := []struct {
		method, path, body, sig string
	}{
		{"POST", "/apps/my-app-id/batch_events", `{"batch":[{"name":"OrderShipped","channel":"private-orders.1","data":"{\"id\":1}"},{"name":"OrderShipped","channel":"orders","data":"{\"id\":1}","socket_id":"123.456"}]}`, "7ca904e8f602e06ce8cb4a14f14b5c523adaa94f44f489713e0b792a72269ec5"},
		{"POST", "/apps/my-app-id/users/42/terminate_connections", `{}`, "c6dbec93ca8377b53a16ccf5b04403c21dc7c74d97e0b6ca6560e8c6d91e3c1b"},
		{"GET", "/apps/my-app-id/channels/presence-room.1/users", ``, "9d19b3d1abbc7060d085980218ae5da976cf846ae342be526057fd6c81fd8495"},
	}
	for _, c := range cases {
		q := SignAPIRequest("my-app-key", "my-app-secret", c.method, c.path, nil, []byte(c.body), ts)
		if got := q.Get("auth_signature"); got != c.sig {
			t.Errorf("%s %s: signature %s, want %s", c.method, c.path, got, c.sig)
		}
	}
}

func TestAPISignatureRefusals(t *testing.T) {
	now := time.Unix(1700000000, 0)
	body := []byte(`{}`)
	good := func() url.Values {
		return SignAPIRequest("k", "s", "POST", "/apps/1/events", nil, body, now)
	}
	cases := []struct {
		name  string
		q     func() url.Values
		body  []byte
		now   time.Time
		wants string
	}{
		{"wrong key", func() url.Values { q := good(); q.Set("auth_key", "x"); return q }, body, now, "auth_key"},
		{"old timestamp", good, body, now.Add(600 * time.Second), "timestamp expired"},
		{"future timestamp", good, body, now.Add(-600 * time.Second), "timestamp expired"},
		{"body changed", good, []byte(`{"a":1}`), now, "body_md5"},
		{"bad signature", func() url.Values { q := good(); q.Set("auth_signature", strings.Repeat("0", 64)); return q }, body, now, "invalid signature"},
		{"version", func() url.Values { q := good(); q.Set("auth_version", "2.0"); return q }, body, now, "auth_version"},
	}
	for _, c := range cases {
		err := verifyAPIRequest("k", "s", "POST", "/apps/1/events", c.q(), c.body, c.now)
		if err == nil || !strings.Contains(err.Error(), c.wants) {
			t.Errorf("%s: err = %v, want it to mention %q", c.name, err, c.wants)
		}
		if err != nil && strings.Contains(err.Error(), "\"s\"") {
			t.Errorf("%s: error leaks the secret: %v", c.name, err)
		}
	}
}

func TestChannelAuthExamples(t *testing.T) { // §10.4, §10.5
	cases := []struct{ channel, data, want string }{
		{"private-foobar", "", "58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"},
		{"presence-foobar", `{"user_id":10,"user_info":{"name":"Mr. Channels"}}`, "31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80"},
		{"presence-foobar", `{"user_id":10,"user_info":{"name":"Mr. Pusher"}}`, "afaed3695da2ffd16931f457e338e6c9f2921fa133ce7dac49f529792be6304c"},
		{"private-encrypted-foo", "", "e85caab4331194145d44feae15aea9539ea50631afacbc593a9555ceadc42357"},
	}
	for _, c := range cases {
		got := ChannelAuth(keyA, secretA, "1234.1234", c.channel, c.data)
		if got != keyA+":"+c.want {
			t.Errorf("%s: %s", c.channel, got)
		}
		msg := "1234.1234:" + c.channel
		if c.data != "" {
			msg += ":" + c.data
		}
		if !verifyAuth(got, keyA, secretA, msg) {
			t.Errorf("%s: own signature refused", c.channel)
		}
		if verifyAuth("otherkey:"+c.want, keyA, secretA, msg) {
			t.Errorf("%s: accepted with another app's key", c.channel)
		}
	}
	if got := UserAuth(keyA, secretA, "1234.1234", `{"id":"12345"}`); got != keyA+":4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba" {
		t.Errorf("user auth = %s", got)
	}
}

// FuzzAPISignature feeds arbitrary query strings and bodies to the verifier: it must never panic
// and must never accept a request it did not sign.
func FuzzAPISignature(f *testing.F) {
	f.Add("auth_key=k&auth_timestamp=1700000000&auth_version=1.0&auth_signature=00", []byte("{}"))
	f.Add("Name=Something%20else&auth_key=foo&channels[]=a&channels[]=b", []byte(""))
	f.Add("%zz=1&auth_key=", []byte("x"))
	now := time.Unix(1700000000, 0)
	f.Fuzz(func(t *testing.T, rawQuery string, body []byte) {
		q, err := url.ParseQuery(rawQuery)
		if err != nil {
			return
		}
		if verifyAPIRequest("k", "s", "POST", "/apps/1/events", q, body, now) == nil {
			// Only a correctly signed request may pass: recompute and compare.
			want := hmacHex("s", apiStringToSign("POST", "/apps/1/events", q))
			if !strings.EqualFold(q.Get("auth_signature"), want) {
				t.Fatalf("accepted a request with a wrong signature: %q", rawQuery)
			}
		}
		signed := SignAPIRequest("k", "s", "POST", "/apps/1/events", q, body, now)
		if err := verifyAPIRequest("k", "s", "POST", "/apps/1/events", signed, body, now); err != nil {
			t.Fatalf("refused its own signature: %v (%q)", err, rawQuery)
		}
	})
}
