package pusher

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// waitLines waits until the sink has at least n lines matching match.
func waitLines(t *testing.T, sink *logSink, match string, n int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if l := sink.lines(t, match); len(l) >= n || time.Now().After(deadline) {
			return l
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// At log level trace (--debug) every frame in and out and every API call is logged per socket,
// app and channel, with the subscribe and signin auth and the API's signature redacted; a
// publish to several sockets is one fan-out line with its recipient count.
func TestTraceLogsFramesRedacted(t *testing.T) {
	var sink logSink
	ts := startServerLog(t, oneApp(), nil, zerolog.New(&sink).Level(zerolog.TraceLevel))
	a, b := ts.connect(t, "key1"), ts.connect(t, "key1")
	const channelData = `{"user_id":"7","user_info":{"name":"Ann"}}`
	if f := a.subscribe("presence-room", channelData); f.Event != "pusher_internal:subscription_succeeded" {
		t.Fatalf("%+v", f)
	}
	sig := ChannelAuth("key1", "secret1", a.socketID, "presence-room", channelData)
	if f := b.subscribe("private-orders", ""); f.Event != "pusher_internal:subscription_succeeded" {
		t.Fatalf("%+v", f)
	}
	userData := `{"id":"42"}`
	signin, _ := json.Marshal(map[string]any{"event": "pusher:signin", "data": map[string]string{
		"auth": UserAuth("key1", "secret1", b.socketID, userData), "user_data": userData}})
	b.send(string(signin))
	if f := b.read(); f.Event != "pusher:signin_success" {
		t.Fatalf("%+v", f)
	}
	c := ts.connect(t, "key1")
	c.subscribe("presence-room", `{"user_id":"8"}`)
	a.read() // member_added
	if code, _ := ts.api(t, "POST", "/apps/app1/events", nil, `{"name":"order.shipped","channels":["presence-room"],"data":"{\"id\":1}"}`); code != 200 {
		t.Fatal(code)
	}
	a.read()
	c.read()

	in := waitLines(t, &sink, `"frame in"`, 4)
	var sub map[string]any
	for _, l := range in {
		if l["event"] == "pusher:subscribe" && l["socket_id"] == a.socketID {
			sub = l
		}
	}
	if sub == nil || sub["channel"] != "presence-room" || sub["app"] != "app1" || sub["level"] != "trace" {
		t.Fatalf("no subscribe line for socket %s in %v", a.socketID, in)
	}
	if frame := sub["frame"].(string); !strings.Contains(frame, `"auth":"[redacted]"`) || !strings.Contains(frame, `Ann`) {
		t.Fatalf("subscribe frame %q: want auth redacted, channel_data kept", frame)
	}
	out := waitLines(t, &sink, `"frame out"`, 1)
	var established, succeeded bool
	for _, l := range out {
		established = established || l["event"] == "pusher:connection_established" && l["socket_id"] == a.socketID
		succeeded = succeeded || l["event"] == "pusher_internal:subscription_succeeded" && l["channel"] == "presence-room" && l["socket_id"] == a.socketID
	}
	if !established || !succeeded {
		t.Fatalf("frames out to %s missing from %v", a.socketID, out)
	}
	fan := waitLines(t, &sink, `"frame out (fan-out)"`, 1)
	var pub []map[string]any
	for _, l := range fan {
		if l["event"] == "order.shipped" {
			pub = append(pub, l)
		}
	}
	if len(pub) != 1 || pub[0]["recipients"] != float64(2) || pub[0]["channel"] != "presence-room" {
		t.Fatalf("publish to 2 sockets: want one fan-out line with recipients 2, got %v", pub)
	}
	api := waitLines(t, &sink, `"API call"`, 1)
	if len(api) != 1 || api[0]["status"] != float64(200) || api[0]["endpoint"] != "events" || api[0]["app"] != "app1" ||
		!strings.Contains(api[0]["query"].(string), "auth_signature=[redacted]") || !strings.Contains(api[0]["query"].(string), "auth_key=[redacted]") ||
		!strings.Contains(api[0]["body"].(string), "order.shipped") {
		t.Fatalf("API call lines %v", api)
	}
	all := func() string { sink.mu.Lock(); defer sink.mu.Unlock(); return sink.buf.String() }()
	_, userSig, _ := strings.Cut(UserAuth("key1", "secret1", b.socketID, userData), ":")
	_, subSig, _ := strings.Cut(sig, ":")
	for _, secret := range []string{subSig, userSig, "secret1"} {
		if strings.Contains(all, secret) {
			t.Fatalf("%q reached the log", secret)
		}
	}
}

// At info level nothing of the frames or API calls is logged, and the paths that trace cost what
// they cost with no logger at all: an inbound message and a publish allocate the same.
func TestTraceOffAtInfoAllocs(t *testing.T) {
	var sink logSink
	ts := startServerLog(t, oneApp(), nil, zerolog.New(&sink).Level(zerolog.InfoLevel))
	a := ts.connect(t, "key1")
	a.subscribe("private-orders", "")
	if code, _ := ts.api(t, "POST", "/apps/app1/events", nil, `{"name":"e","channels":["private-orders"],"data":"{}"}`); code != 200 {
		t.Fatal(code)
	}
	a.read()
	a.expectNothing()
	for _, m := range []string{"frame in", "frame out", "API call"} {
		if l := sink.lines(t, m); len(l) > 0 {
			t.Fatalf("%q logged at info: %v", m, l)
		}
	}
	if raceEnabled {
		return // allocation counts are not meaningful under -race
	}
	measure := func(log zerolog.Logger) (msg, publish float64) {
		s, err := NewServer(oneApp(), log)
		if err != nil {
			t.Fatal(err)
		}
		defer stopForTest(s)
		attach(t, s, "orders", 10)
		app := s.appByID("app1")
		var sock *Socket
		app.sockets.Range(func(k, _ any) bool { sock = k.(*Socket); return false })
		ping := []byte(`{"event":"pusher:ping","data":{}}`)
		msg = testing.AllocsPerRun(100, func() { sock.OnMessage(ping) })
		publish = testing.AllocsPerRun(50, func() { s.publish(app, "e", []string{"orders"}, "payload", "") })
		return msg, publish
	}
	nopMsg, nopPub := measure(zerolog.Nop())
	infoMsg, infoPub := measure(zerolog.New(&sink).Level(zerolog.InfoLevel))
	if infoMsg != nopMsg || infoPub != nopPub {
		t.Fatalf("allocations at info level: message %v, publish %v; with no logger: %v, %v", infoMsg, infoPub, nopMsg, nopPub)
	}
}

func TestRedactJSON(t *testing.T) {
	for _, c := range []struct{ in, want, event, channel string }{
		{`{"event":"pusher:subscribe","data":{"channel":"private-a","auth":"key1:abc"}}`,
			`{"data":{"auth":"[redacted]","channel":"private-a"},"event":"pusher:subscribe"}`, "pusher:subscribe", "private-a"},
		// Data sent as a JSON string (some SDKs): redacted inside, re-encoded.
		{`{"event":"pusher:signin","data":"{\"auth\":\"key1:abc\",\"user_data\":\"{}\"}"}`,
			`{"data":"{\"auth\":\"[redacted]\",\"user_data\":\"{}\"}","event":"pusher:signin"}`, "pusher:signin", ""},
		{`{"name":"e","channels":["a"],"data":"{\"x\":1}","app_secret":"s","nested":[{"Auth_Signature":"z"}]}`,
			`{"app_secret":"[redacted]","channels":["a"],"data":"{\"x\":1}","name":"e","nested":[{"Auth_Signature":"[redacted]"}]}`, "", ""},
		{`{"event":"client-x","channel":"private-a","data":"{\"auth\":\"broken"}`,
			`{"channel":"private-a","data":"[redacted]","event":"client-x"}`, "client-x", "private-a"},
		{`not json at all`, `not json at all`, "", ""},
		{`{"auth":"key1:abc"`, `[not JSON: 18 bytes, redacted]`, "", ""},
	} {
		got, event, channel := redactJSON([]byte(c.in))
		if got != c.want || event != c.event || channel != c.channel {
			t.Errorf("redactJSON(%s) = %s, %q, %q; want %s, %q, %q", c.in, got, event, channel, c.want, c.event, c.channel)
		}
	}
}

// FuzzRedactJSON: whatever the input, no sensitive key in the output keeps its value, at any
// depth or inside JSON strings, and nothing panics.
func FuzzRedactJSON(f *testing.F) {
	f.Add([]byte(`{"event":"pusher:subscribe","data":{"channel":"private-a","auth":"key1:abc","channel_data":"{\"user_id\":1}"}}`))
	f.Add([]byte(`{"event":"pusher:signin","data":"{\"auth\":\"k:s\",\"user_data\":\"{\\\"secret\\\":1}\"}"}`))
	f.Add([]byte(`[{"SECRET":[1,2]},"{\"auth_key\":\"x\"}"]`))
	f.Add([]byte(`{"a":"{\"auth\":"}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		out, _, _ := redactJSON(raw)
		if len(out) >= traceMaxBytes {
			return // cut: no longer parses
		}
		v, ok := decodeJSON([]byte(out))
		if !ok {
			return
		}
		var check func(v any)
		check = func(v any) {
			switch t2 := v.(type) {
			case map[string]any:
				for k, x := range t2 {
					if sensitiveKey(k) && x != redacted {
						t.Fatalf("key %q kept %v in %s (from %s)", k, x, out, raw)
					}
					check(x)
				}
			case []any:
				for _, x := range t2 {
					check(x)
				}
			case string: // JSON objects and arrays carried as strings are redacted too
				if s := strings.TrimSpace(t2); strings.HasPrefix(s, "{") || strings.HasPrefix(s, "[") {
					if inner, ok := decodeJSON([]byte(s)); ok {
						check(inner)
					}
				}
			}
		}
		check(v)
	})
}
