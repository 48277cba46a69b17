package pusher

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/frontdoorhq/frontdoor/internal/leaktest"
	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
)

// testServer runs a Server behind a real fasthttp listener on loopback, routed the way
// cmd/frontdoor routes it.
type testServer struct {
	srv  *Server
	addr string
}

func startServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	return startServerOn(t, cfg, nil)
}

// startServerOn is startServer with the listener wrapped (TLS, say) by wrap when it is not nil.
func startServerOn(t *testing.T, cfg Config, wrap func(net.Listener) net.Listener) *testServer {
	t.Helper()
	return startServerLog(t, cfg, wrap, zerolog.Nop())
}

// startServerLog is startServerOn with the server logging to log.
func startServerLog(t *testing.T, cfg Config, wrap func(net.Listener) net.Listener, log zerolog.Logger) *testServer {
	t.Helper()
	return startServerHTTP(t, cfg, wrap, log, nil)
}

// startServerHTTP is startServerLog with mod, when not nil, changing the fasthttp server's
// settings before it starts.
func startServerHTTP(t *testing.T, cfg Config, wrap func(net.Listener) net.Listener, log zerolog.Logger, mod func(*fasthttp.Server)) *testServer {
	t.Helper()
	s, err := NewServer(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		ln = wrap(ln)
	}
	hs := &fasthttp.Server{
		KeepHijackedConns: true,
		StreamRequestBody: true,
		Handler: func(ctx *fasthttp.RequestCtx) {
			p := string(ctx.Path())
			switch {
			case strings.HasPrefix(p, cfg.PathPrefix+"/app/"):
				s.HandleWebSocket(ctx)
			case strings.HasPrefix(p, cfg.PathPrefix+"/apps/"):
				s.HandleAPI(ctx)
			default:
				ctx.Error("not pusher", 404)
			}
		},
	}
	if mod != nil {
		mod(hs)
	}
	go hs.Serve(ln)
	t.Cleanup(func() {
		ln.Close()
		s.closing.Store(true)
		for _, a := range s.appList() {
			a.sockets.Range(func(k, _ any) bool { k.(*Socket).conn.Close(1001, "test over"); return true })
		}
		stopForTest(s)
	})
	return &testServer{srv: s, addr: ln.Addr().String()}
}

// stopForTest ends what NewServer started (the janitor, the flusher's workers and pollers)
// without Shutdown's paced closes and webhook flush: tests that are done with a server.
func stopForTest(s *Server) {
	s.stopOnce.Do(func() { close(s.stop) })
	s.flusher.Stop()
}

// The helpers above leave nothing running once a test's cleanup is done: before stopForTest,
// each test server left its flusher's goroutines parked (some 650 after one run of the package).
func TestTestServersLeaveNoGoroutines(t *testing.T) {
	leaktest.Check(t, "github.com/frontdoorhq/frontdoor/pusher")
	t.Run("served", func(t *testing.T) {
		ts := startServer(t, oneApp())
		c := ts.connect(t, "key1")
		c.subscribe("room", "")
	})
	t.Run("attached", func(t *testing.T) {
		attach(t, newTestServer(t), "room", 3)
	})
}

func oneApp(mod ...func(*AppConfig)) Config {
	a := AppConfig{ID: "app1", Key: "key1", Secret: "secret1"}
	for _, m := range mod {
		m(&a)
	}
	return Config{Apps: []AppConfig{a}}
}

type client struct {
	t        *testing.T
	c        *websocket.Conn
	socketID string
}

type frame struct {
	Event   string `json:"event"`
	Channel string `json:"channel"`
	Data    string `json:"data"`
	UserID  string `json:"user_id"`
}

func (ts *testServer) dialRaw(t *testing.T, path string, hdr http.Header) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial("ws://"+ts.addr+path, hdr)
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (ts *testServer) connect(t *testing.T, key string) *client {
	t.Helper()
	c := &client{t: t, c: ts.dialRaw(t, "/app/"+key+"?protocol=7&client=go&version=1", nil)}
	f := c.read()
	if f.Event != "pusher:connection_established" {
		t.Fatalf("first frame %+v", f)
	}
	var d struct {
		SocketID        string `json:"socket_id"`
		ActivityTimeout int    `json:"activity_timeout"`
	}
	if err := json.Unmarshal([]byte(f.Data), &d); err != nil || !socketIDPattern.MatchString(d.SocketID) || d.ActivityTimeout <= 0 {
		t.Fatalf("connection_established data %q", f.Data)
	}
	c.socketID = d.SocketID
	return c
}

func (c *client) send(v string) {
	c.t.Helper()
	if err := c.c.WriteMessage(websocket.TextMessage, []byte(v)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *client) read() frame {
	c.t.Helper()
	_ = c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, msg, err := c.c.ReadMessage()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	var f frame
	if err := json.Unmarshal(msg, &f); err != nil {
		c.t.Fatalf("server sent non-JSON %q", msg)
	}
	return f
}

// expectNothing proves no frame arrives: a ping round trip after which only the pong may come.
func (c *client) expectNothing() {
	c.t.Helper()
	c.send(`{"event":"pusher:ping","data":{}}`)
	if f := c.read(); f.Event != "pusher:pong" {
		c.t.Fatalf("unexpected frame %+v", f)
	}
}

func (c *client) expectClose(code int) {
	c.t.Helper()
	for {
		_ = c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _, err := c.c.ReadMessage()
		if err == nil {
			continue
		}
		ce, ok := err.(*websocket.CloseError)
		if !ok || ce.Code != code {
			c.t.Fatalf("want close %d, got %v", code, err)
		}
		return
	}
}

func (c *client) subscribe(channel, channelData string) frame {
	c.t.Helper()
	d := map[string]string{"channel": channel}
	typ := typeOf(channel)
	if typ.needsAuth() {
		d["auth"] = ChannelAuth("key1", "secret1", c.socketID, channel, channelData)
	}
	if channelData != "" {
		d["channel_data"] = channelData
	}
	b, _ := json.Marshal(map[string]any{"event": "pusher:subscribe", "data": d})
	c.send(string(b))
	return c.read()
}

func errorCode(t *testing.T, f frame) any {
	t.Helper()
	if f.Event != "pusher:error" {
		t.Fatalf("want pusher:error, got %+v", f)
	}
	var d struct {
		Code    any    `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal([]byte(f.Data), &d); err != nil || d.Message == "" {
		t.Fatalf("pusher:error data %q", f.Data)
	}
	return d.Code
}

func TestConnectPingAndMalformedInput(t *testing.T) {
	ts := startServer(t, oneApp())
	c := ts.connect(t, "key1")
	c.send(`{"event":"pusher:ping","data":{}}`)
	if f := c.read(); f.Event != "pusher:pong" || f.Data != "{}" {
		t.Fatalf("pong %+v", f)
	}
	for _, bad := range []string{`not json`, `{"data":{}}`, `[1,2]`, `{"event":"pusher:subscribe","data":{}}`, `{"event":"pusher:nonsense"}`, `{"event":"other"}`} {
		c.send(bad)
		if code := errorCode(t, c.read()); code != nil {
			t.Fatalf("%s: code %v, want null", bad, code)
		}
	}
	c.expectNothing() // the socket survived all of it
}

func TestHandshakeRefusals(t *testing.T) {
	cfg := Config{Apps: []AppConfig{
		{ID: "app1", Key: "key1", Secret: "s"},
		{ID: "off", Key: "offkey", Secret: "s", Disabled: true},
		{ID: "tls", Key: "tlskey", Secret: "s", RequireTLS: true},
		{ID: "orig", Key: "origkey", Secret: "s", AllowedOrigins: []string{"laravel.test"}},
		{ID: "one", Key: "onekey", Secret: "s", MaxConnections: 1},
	}}
	ts := startServer(t, cfg)
	cases := []struct {
		name, path string
		origin     string
		code       int
	}{
		{"unknown key", "/app/nope?protocol=7", "", 4001},
		{"no protocol", "/app/key1", "", 4008},
		{"old protocol", "/app/key1?protocol=4", "", 4007},
		{"new protocol", "/app/key1?protocol=8", "", 4007},
		{"disabled", "/app/offkey?protocol=7", "", 4003},
		{"tls only", "/app/tlskey?protocol=7", "", 4000},
		{"origin", "/app/origkey?protocol=7", "https://evil.test", 4009},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hdr := http.Header{}
			if c.origin != "" {
				hdr.Set("Origin", c.origin)
			}
			cl := &client{t: t, c: ts.dialRaw(t, c.path, hdr)}
			if code := errorCode(t, cl.read()); code != float64(c.code) {
				t.Fatalf("pusher:error code %v, want %d", code, c.code)
			}
			cl.expectClose(c.code)
		})
	}
	t.Run("origin allowed", func(t *testing.T) {
		c := &client{t: t, c: ts.dialRaw(t, "/app/origkey?protocol=7", http.Header{"Origin": {"https://laravel.test"}})}
		if f := c.read(); f.Event != "pusher:connection_established" {
			t.Fatalf("%+v", f)
		}
	})
	t.Run("over quota", func(t *testing.T) {
		first := ts.connect(t, "onekey")
		cl := &client{t: t, c: ts.dialRaw(t, "/app/onekey?protocol=7", nil)}
		if code := errorCode(t, cl.read()); code != float64(4004) {
			t.Fatalf("code %v", code)
		}
		cl.expectClose(4004)
		first.expectNothing()
	})
}

func TestMessageTooLargeClosesWith1009(t *testing.T) {
	ts := startServer(t, oneApp(func(a *AppConfig) { a.MaxMessageSize = 100 }))
	c := ts.connect(t, "key1")
	other := ts.connect(t, "key1")
	c.send(`{"event":"pusher:ping","data":"` + strings.Repeat("x", 200) + `"}`)
	c.expectClose(1009)
	other.expectNothing()
}

func TestPrivateAndPresence(t *testing.T) {
	ts := startServer(t, oneApp())
	a := ts.connect(t, "key1")
	if f := a.subscribe("private-orders.1", ""); f.Event != "pusher_internal:subscription_succeeded" || f.Data != "{}" {
		t.Fatalf("%+v", f)
	}
	// Wrong signature: subscription_error with status 401, socket kept.
	a.send(`{"event":"pusher:subscribe","data":{"channel":"private-x","auth":"key1:` + strings.Repeat("0", 64) + `"}}`)
	f := a.read()
	if f.Event != "pusher:subscription_error" || f.Channel != "private-x" || !strings.Contains(f.Data, `"status":401`) {
		t.Fatalf("%+v", f)
	}
	if f := a.subscribe("bad name!", ""); f.Event != "pusher:subscription_error" || !strings.Contains(f.Data, `"status":400`) {
		t.Fatalf("%+v", f)
	}

	// Presence: user 1 on two sockets counts once; user 2 sees one join and one leave.
	u1a, u1b, u2 := ts.connect(t, "key1"), ts.connect(t, "key1"), ts.connect(t, "key1")
	cd1 := `{"user_id":1,"user_info":{"name":"Ann"}}`
	cd2 := `{"user_id":"2","user_info":{"name":"Bob"}}`
	if f := u2.subscribe("presence-room", cd2); !strings.Contains(f.Data, `"count":1`) {
		t.Fatalf("%+v", f)
	}
	f = u1a.subscribe("presence-room", cd1)
	var pd struct {
		Presence struct {
			IDs   []string                   `json:"ids"`
			Hash  map[string]json.RawMessage `json:"hash"`
			Count int                        `json:"count"`
		} `json:"presence"`
	}
	if err := json.Unmarshal([]byte(f.Data), &pd); err != nil || pd.Presence.Count != 2 || len(pd.Presence.IDs) != 2 || string(pd.Presence.Hash["1"]) != `{"name":"Ann"}` {
		t.Fatalf("subscription_succeeded %q", f.Data)
	}
	if f := u2.read(); f.Event != "pusher_internal:member_added" || f.Data != `{"user_id":"1","user_info":{"name":"Ann"}}` {
		t.Fatalf("member_added %+v", f)
	}
	u1b.subscribe("presence-room", cd1)
	u2.expectNothing() // second socket of user 1: no second member_added
	u1a.c.Close()
	u2.expectNothing() // user 1 still has a socket
	u1b.send(`{"event":"pusher:unsubscribe","data":{"channel":"presence-room"}}`)
	if f := u2.read(); f.Event != "pusher_internal:member_removed" || f.Data != `{"user_id":"1"}` {
		t.Fatalf("member_removed %+v", f)
	}
}

func TestClientEvents(t *testing.T) {
	ts := startServer(t, oneApp(func(a *AppConfig) { a.ClientEventRate = 3 }))
	a, b := ts.connect(t, "key1"), ts.connect(t, "key1")
	a.subscribe("presence-chat", `{"user_id":"7"}`)
	b.subscribe("presence-chat", `{"user_id":"8"}`)
	a.read() // member_added for 8
	a.send(`{"event":"client-typing","channel":"presence-chat","data":{"typing":true},"user_id":"forged"}`)
	f := b.read()
	if f.Event != "client-typing" || f.Data != `{"typing":true}` || f.UserID != "7" {
		t.Fatalf("relayed %+v", f)
	}
	a.expectNothing() // not echoed to the sender

	// Public and encrypted channels refuse client events with code null.
	a.subscribe("public-room", "")
	a.send(`{"event":"client-x","channel":"public-room","data":{}}`)
	if code := errorCode(t, a.read()); code != nil {
		t.Fatalf("public: %v", code)
	}
	a.send(`{"event":"client-x","channel":"private-encrypted-x","data":{}}`)
	if code := errorCode(t, a.read()); code != nil {
		t.Fatalf("encrypted: %v", code)
	}
	// Not subscribed: 4009.
	a.send(`{"event":"client-x","channel":"private-elsewhere","data":{}}`)
	if code := errorCode(t, a.read()); code != float64(4009) {
		t.Fatalf("not subscribed: %v", code)
	}
	// Rate limit: a burst over 3/s gets 4301 as a frame; the socket stays open.
	for range 6 {
		a.send(`{"event":"client-x","channel":"presence-chat","data":"s"}`)
	}
	a.send(`{"event":"pusher:ping","data":{}}`)
	limited := 0
	for f := a.read(); f.Event != "pusher:pong"; f = a.read() {
		if code := errorCode(t, f); code == float64(4301) {
			limited++
		}
	}
	if limited < 2 {
		t.Fatalf("%d refusals with 4301 for 6 events at 3/s", limited)
	}
	a.expectNothing()
}

func TestClientEventsDisabled(t *testing.T) {
	ts := startServer(t, oneApp(func(a *AppConfig) { a.AcceptClientEventsFrom = "none" }))
	a := ts.connect(t, "key1")
	a.subscribe("private-x", "")
	a.send(`{"event":"client-x","channel":"private-x","data":{}}`)
	if code := errorCode(t, a.read()); code != float64(4301) {
		t.Fatalf("%v", code)
	}
}

// api calls the HTTP API signed as the PHP SDK signs.
func (ts *testServer) api(t *testing.T, method, path string, q url.Values, body string) (int, map[string]any) {
	t.Helper()
	signed := SignAPIRequest("key1", "secret1", method, path, q, []byte(body), time.Now())
	return ts.rawAPI(t, method, path+"?"+signed.Encode(), body)
}

func (ts *testServer) rawAPI(t *testing.T, method, pathQuery, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+ts.addr+pathQuery, strings.NewReader(body))
	resp, out := doJSON(t, req)
	return resp.StatusCode, out
}

// doJSON sends req and decodes its JSON body; the test fails on any other body.
func doJSON(t *testing.T, req *http.Request) (*http.Response, map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: %d with a non-JSON body %q", req.Method, req.URL, resp.StatusCode, raw)
	}
	return resp, out
}

func TestAPIPublishExclusionAndCache(t *testing.T) {
	ts := startServer(t, oneApp())
	a, b := ts.connect(t, "key1"), ts.connect(t, "key1")
	a.subscribe("orders", "")
	b.subscribe("orders", "")
	body := fmt.Sprintf(`{"name":"App\\Events\\OrderShipped","channels":["orders"],"data":"{\"id\":1}","socket_id":%q}`, a.socketID)
	if code, out := ts.api(t, "POST", "/apps/app1/events", nil, body); code != 200 || len(out) != 0 {
		t.Fatalf("%d %v", code, out)
	}
	if f := b.read(); f.Event != `App\Events\OrderShipped` || f.Channel != "orders" || f.Data != `{"id":1}` {
		t.Fatalf("%+v", f)
	}
	a.expectNothing() // excluded by socket_id

	// Cache channel: miss, then the last event replayed to a later subscriber.
	if f := a.subscribe("cache-prices", ""); f.Event != "pusher_internal:subscription_succeeded" {
		t.Fatalf("%+v", f)
	}
	if f := a.read(); f.Event != "pusher:cache_miss" || f.Channel != "cache-prices" {
		t.Fatalf("%+v", f)
	}
	ts.api(t, "POST", "/apps/app1/events", nil, `{"name":"price","channel":"cache-prices","data":"42"}`)
	a.read()
	b.subscribe("cache-prices", "")
	if f := b.read(); f.Event != "price" || f.Data != "42" {
		t.Fatalf("replay %+v", f)
	}
	code, out := ts.api(t, "GET", "/apps/app1/channels/cache-prices", url.Values{"info": {"cache,subscription_count"}}, "")
	if code != 200 || out["occupied"] != true || out["subscription_count"] != float64(2) {
		t.Fatalf("%d %v", code, out)
	}

	// Batch with info.
	code, out = ts.api(t, "POST", "/apps/app1/batch_events", nil, `{"batch":[{"name":"a","channel":"orders","data":"1","info":"subscription_count"},{"name":"b","channel":"empty","data":"2"}]}`)
	if code != 200 || fmt.Sprint(out["batch"]) != "[map[subscription_count:2] map[]]" {
		t.Fatalf("%d %v", code, out)
	}
}

func TestAPIQueries(t *testing.T) {
	ts := startServer(t, oneApp())
	a := ts.connect(t, "key1")
	a.subscribe("presence-room", `{"user_id":"5"}`)
	a.subscribe("orders", "")
	code, out := ts.api(t, "GET", "/apps/app1/channels", url.Values{"filter_by_prefix": {"presence-"}, "info": {"user_count"}}, "")
	if code != 200 || fmt.Sprint(out) != "map[channels:map[presence-room:map[user_count:1]]]" {
		t.Fatalf("%d %v", code, out)
	}
	if code, _ := ts.api(t, "GET", "/apps/app1/channels", url.Values{"info": {"user_count"}}, ""); code != 400 {
		t.Fatalf("user_count without presence- prefix: %d", code)
	}
	code, out = ts.api(t, "GET", "/apps/app1/channels/presence-room/users", nil, "")
	if code != 200 || fmt.Sprint(out) != "map[users:[map[id:5]]]" {
		t.Fatalf("%d %v", code, out)
	}
	if code, _ := ts.api(t, "GET", "/apps/app1/channels/orders/users", nil, ""); code != 400 {
		t.Fatalf("users of a public channel: %d", code)
	}
	code, out = ts.api(t, "GET", "/apps/app1/connections", nil, "")
	if code != 200 || out["connections"] != float64(1) {
		t.Fatalf("%d %v", code, out)
	}
	code, out = ts.api(t, "GET", "/apps/app1/channels/nobody", url.Values{"info": {"subscription_count"}}, "")
	if code != 200 || out["occupied"] != false {
		t.Fatalf("%d %v", code, out)
	}
}

func TestAPIRefusals(t *testing.T) {
	ts := startServer(t, oneApp())
	hundredOne := make([]string, 101)
	for i := range hundredOne {
		hundredOne[i] = fmt.Sprintf("c%d", i)
	}
	many, _ := json.Marshal(map[string]any{"name": "e", "data": "x", "channels": hundredOne})
	batch11 := `{"batch":[` + strings.TrimSuffix(strings.Repeat(`{"name":"e","channel":"c","data":"x"},`, 11), ",") + `]}`
	cases := []struct {
		name, method, path, body string
		status                   int
	}{
		{"bad json", "POST", "/apps/app1/events", `{"name":`, 400},
		{"data object", "POST", "/apps/app1/events", `{"name":"e","channel":"c","data":{"a":1}}`, 400},
		{"no channels", "POST", "/apps/app1/events", `{"name":"e","data":"x"}`, 400},
		{"101 channels", "POST", "/apps/app1/events", string(many), 400},
		{"data over 10KB", "POST", "/apps/app1/events", `{"name":"e","channel":"c","data":"` + strings.Repeat("x", 10241) + `"}`, 413},
		{"encrypted mixed", "POST", "/apps/app1/events", `{"name":"e","channels":["private-encrypted-a","b"],"data":"x"}`, 400},
		{"bad socket id", "POST", "/apps/app1/events", `{"name":"e","channel":"c","data":"x","socket_id":"abc"}`, 400},
		{"11 in batch", "POST", "/apps/app1/batch_events", batch11, 400},
		{"wrong method", "GET", "/apps/app1/events", ``, 405},
		{"unknown endpoint", "GET", "/apps/app1/nothing", ``, 404},
	}
	for _, c := range cases {
		code, out := ts.api(t, c.method, c.path, nil, c.body)
		if code != c.status || out["error"] == nil || out["error"] == "" {
			t.Errorf("%s: %d %v, want %d with an error", c.name, code, out, c.status)
		}
	}
	// Signature problems are 401; an unknown app is 404.
	if code, out := ts.rawAPI(t, "POST", "/apps/app1/events?auth_key=key1", `{}`); code != 401 || out["error"] == nil {
		t.Errorf("unsigned: %d %v", code, out)
	}
	signed := SignAPIRequest("key1", "wrong-secret", "POST", "/apps/app1/events", nil, []byte(`{}`), time.Now())
	if code, _ := ts.rawAPI(t, "POST", "/apps/app1/events?"+signed.Encode(), `{}`); code != 401 {
		t.Errorf("wrong secret: %d", code)
	}
	old := SignAPIRequest("key1", "secret1", "POST", "/apps/app1/events", nil, []byte(`{}`), time.Now().Add(-11*time.Minute))
	if code, out := ts.rawAPI(t, "POST", "/apps/app1/events?"+old.Encode(), `{}`); code != 401 || !strings.Contains(fmt.Sprint(out["error"]), "timestamp") {
		t.Errorf("old timestamp: %d %v", code, out)
	}
	if code, _ := ts.api(t, "POST", "/apps/nope/events", nil, `{}`); code != 404 {
		t.Errorf("unknown app: %d", code)
	}
	// A body over max_request_bytes is refused with 413. A raw client writes the whole body before
	// reading, so the answer cannot race a reset of an unread upload.
	conn, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	big := `{"name":"e","channel":"c","data":"` + strings.Repeat("x", 2<<20) + `"}`
	fmt.Fprintf(conn, "POST /apps/app1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(big), big)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	status, _ := bufio.NewReader(conn).ReadString('\n')
	if !strings.Contains(status, " 413 ") {
		t.Errorf("body over max_request_bytes: %q", status)
	}
}

func TestPathPrefixSignsUnprefixedPath(t *testing.T) {
	cfg := oneApp()
	cfg.PathPrefix = "/ws"
	ts := startServer(t, cfg)
	c := &client{t: t, c: ts.dialRaw(t, "/ws/app/key1?protocol=7", nil)}
	if f := c.read(); f.Event != "pusher:connection_established" {
		t.Fatalf("%+v", f)
	}
	signed := SignAPIRequest("key1", "secret1", "GET", "/apps/app1/connections", nil, nil, time.Now())
	if code, out := ts.rawAPI(t, "GET", "/ws/apps/app1/connections?"+signed.Encode(), ""); code != 200 || out["connections"] != float64(1) {
		t.Fatalf("%d %v", code, out)
	}
}

func TestSigninServerToUserAndTerminate(t *testing.T) {
	ts := startServer(t, oneApp())
	a, b := ts.connect(t, "key1"), ts.connect(t, "key1")
	userData := `{"id":"42","user_info":{"name":"Ann"}}`
	msg, _ := json.Marshal(map[string]any{"event": "pusher:signin", "data": map[string]string{
		"auth": UserAuth("key1", "secret1", a.socketID, userData), "user_data": userData}})
	a.send(string(msg))
	f := a.read()
	var d struct {
		UserData string `json:"user_data"`
	}
	if f.Event != "pusher:signin_success" || json.Unmarshal([]byte(f.Data), &d) != nil || d.UserData != userData {
		t.Fatalf("%+v", f)
	}
	if f := a.subscribe("#server-to-user-42", ""); f.Event != "pusher_internal:subscription_succeeded" {
		t.Fatalf("%+v", f)
	}
	if f := b.subscribe("#server-to-user-42", ""); f.Event != "pusher:subscription_error" {
		t.Fatalf("another socket read user 42's channel: %+v", f)
	}
	// Bad sign-in: 4009 frame, socket kept.
	b.send(`{"event":"pusher:signin","data":{"auth":"key1:00","user_data":"{\"id\":\"1\"}"}}`)
	if code := errorCode(t, b.read()); code != float64(4009) {
		t.Fatalf("%v", code)
	}
	// sendToUser.
	ts.api(t, "POST", "/apps/app1/events", nil, `{"name":"note","channel":"#server-to-user-42","data":"hi"}`)
	if f := a.read(); f.Event != "note" || f.Data != "hi" {
		t.Fatalf("%+v", f)
	}
	// terminate_connections: the signed-in socket and a presence member with that id.
	b.subscribe("presence-room", `{"user_id":"42"}`)
	other := ts.connect(t, "key1")
	if code, _ := ts.api(t, "POST", "/apps/app1/users/42/terminate_connections", nil, `{}`); code != 200 {
		t.Fatal(code)
	}
	a.expectClose(4009)
	b.expectClose(4009)
	other.expectNothing()
}

// A client that stops reading is closed as a slow consumer (4100) while others get every message.
func TestSlowConsumerIsClosedOthersUnaffected(t *testing.T) {
	cfg := oneApp(func(a *AppConfig) { a.MaxEventBytes = 64 << 10 })
	cfg.QueueBytes = 256 << 10
	ts := startServer(t, cfg)
	fast := ts.connect(t, "key1")
	fast.subscribe("feed", "")

	// The slow client: a raw WebSocket handshake over TCP, then it never reads again.
	slow, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	_ = slow.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(slow, "GET /app/key1?protocol=7 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	sub := []byte(`{"event":"pusher:subscribe","data":{"channel":"feed"}}`)
	masked := append([]byte{0x81, 0x80 | byte(len(sub)), 0, 0, 0, 0}, sub...) // zero mask
	if _, err := slow.Write(masked); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, out := ts.api(t, "GET", "/apps/app1/channels/feed", url.Values{"info": {"subscription_count"}}, "")
		if code == 200 && out["subscription_count"] == float64(2) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slow client never subscribed: %v", out)
		}
		time.Sleep(10 * time.Millisecond)
	}

	payload := strings.Repeat("x", 60000)
	const n = 250 // 15 MB offered: far over the slow socket's 256 KiB queue plus kernel buffers
	// The server's memory stays bounded: what the stalled socket holds is its queue (256 KiB), not
	// what was offered. Live heap after a GC, sampled while publishing, grows by far less than the
	// 15 MB an unbounded queue would keep.
	liveHeap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	base, peak := liveHeap(), uint64(0)
	for i := range n {
		if i%25 == 24 {
			peak = max(peak, liveHeap())
		}
		body := fmt.Sprintf(`{"name":"tick","channel":"feed","data":"%d %s"}`, i, payload)
		if code, _ := ts.api(t, "POST", "/apps/app1/events", nil, body); code != 200 {
			t.Fatalf("publish %d: %d", i, code)
		}
		f := fast.read()
		if !strings.HasPrefix(f.Data, fmt.Sprint(i)+" ") {
			t.Fatalf("fast client: message %d out of order: %.20q", i, f.Data)
		}
	}
	if growth := int64(peak) - int64(base); growth > 4<<20 {
		t.Fatalf("live heap grew by %d bytes while a stalled socket was offered 15 MB: the queue is not bounded", growth)
	}
	// The slow socket is gone (4100); the fast one still works.
	deadline = time.Now().Add(10 * time.Second)
	for ts.srv.appByID("app1").conns.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("slow consumer not closed: %d connections", ts.srv.appByID("app1").conns.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ts.srv.Stats().Apps["app1"].Connections != 1 {
		t.Fatal("stats disagree")
	}
	// It was closed as a slow consumer, 4100: the one close OnClose counts under that reason.
	if k := ts.srv.Stats().Kicked; k["slow_consumer"] != 1 {
		t.Fatalf("kicks %v, want one slow_consumer (close 4100)", k)
	}
	// With megabytes still unsent, the server resets the connection instead of a FIN queued
	// behind them (which would keep the socket and its buffer in FIN-WAIT-1): reading what
	// arrived ends in ECONNRESET, not EOF.
	_ = slow.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = io.Copy(io.Discard, slow)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("slow client's read ended with %v, want ECONNRESET", err)
	}
	fast.expectNothing()
}

// signin signs c in as userData's user and returns the frame after signin_success.
func (c *client) signin(userData string) {
	c.t.Helper()
	msg, _ := json.Marshal(map[string]any{"event": "pusher:signin", "data": map[string]string{
		"auth": UserAuth("key1", "secret1", c.socketID, userData), "user_data": userData}})
	c.send(string(msg))
	if f := c.read(); f.Event != "pusher:signin_success" {
		c.t.Fatalf("signin: %+v", f)
	}
}

// Watchlist (§7): the current state on sign-in, then online/offline as watched users' sockets
// sign in and the last one closes; over 100 ids, 4302 after signin_success.
func TestWatchlist(t *testing.T) {
	ts := startServer(t, oneApp())
	bob := ts.connect(t, "key1")
	bob.signin(`{"id":"2"}`)
	ann := ts.connect(t, "key1")
	ann.signin(`{"id":"1","watchlist":["2","3",4]}`)
	if f := ann.read(); f.Event != "pusher_internal:watchlist_events" || f.Data != `{"events":[{"name":"online","user_ids":["2"]},{"name":"offline","user_ids":["3","4"]}]}` {
		t.Fatalf("initial state %+v", f)
	}
	carl := ts.connect(t, "key1")
	carl.signin(`{"id":"3"}`)
	if f := ann.read(); f.Data != `{"events":[{"name":"online","user_ids":["3"]}]}` {
		t.Fatalf("online %+v", f)
	}
	carl2 := ts.connect(t, "key1") // a second tab: already online, nothing to say
	carl2.signin(`{"id":"3"}`)
	ann.expectNothing()
	// A late report of a state the watcher was already told (with Redis: the bus delivering an
	// "online" after the initial state read it from the broker) is not told again.
	ts.srv.appByID("app1").notifyWatchers("3", true)
	ann.expectNothing()
	carl.c.Close()
	ann.expectNothing()
	carl2.c.Close()
	if f := ann.read(); f.Data != `{"events":[{"name":"offline","user_ids":["3"]}]}` {
		t.Fatalf("offline %+v", f)
	}

	ids := make([]string, 101)
	for i := range ids {
		ids[i] = fmt.Sprintf("%q", fmt.Sprint("u", i))
	}
	dan := ts.connect(t, "key1")
	dan.signin(`{"id":"9","watchlist":[` + strings.Join(ids, ",") + `]}`)
	f := dan.read()
	var w struct {
		Events []struct {
			Name    string   `json:"name"`
			UserIDs []string `json:"user_ids"`
		} `json:"events"`
	}
	if f.Event != "pusher_internal:watchlist_events" || json.Unmarshal([]byte(f.Data), &w) != nil || len(w.Events) != 1 || len(w.Events[0].UserIDs) != 100 {
		t.Fatalf("capped watchlist %+v", f)
	}
	if code := errorCode(t, dan.read()); code != float64(4302) {
		t.Fatalf("want 4302, got %v", code)
	}
}

// presentHook is the in-memory broker with hook run inside Present: while a watcher's initial
// state is being read.
type presentHook struct {
	memoryBroker
	hook func()
}

func (b *presentHook) Present(ctx context.Context, app, prefix string, users []string) ([]bool, error) {
	b.hook()
	return b.memoryBroker.Present(ctx, app, prefix, users)
}

// A watched user's change that reaches the node while a watcher's initial state is being read
// (with Redis: another node's "online" on the bus) is folded into that state: the initial
// watchlist_events comes first and names each user once.
func TestWatchlistChangeDuringInitialState(t *testing.T) {
	b := &presentHook{}
	cfg := oneApp()
	cfg.Broker = b
	ts := startServer(t, cfg)
	b.hook = func() { ts.srv.appByID("app1").notifyWatchers("2", true) }
	ann := ts.connect(t, "key1")
	ann.signin(`{"id":"1","watchlist":["2","3"]}`)
	if f := ann.read(); f.Event != "pusher_internal:watchlist_events" || f.Data != `{"events":[{"name":"online","user_ids":["2"]},{"name":"offline","user_ids":["3"]}]}` {
		t.Fatalf("initial state %+v", f)
	}
	ann.expectNothing()
}

// §3 liveness: after ping_interval of silence the server sends a WebSocket ping frame; a socket
// that answers (any frame) stays, one that stays silent for the pong timeout gets pusher:error
// 4201 and close 4201. Other sockets are not touched.
func TestServerPingThenPongTimeout(t *testing.T) {
	cfg := oneApp(func(a *AppConfig) { a.PingInterval = 1 })
	cfg.PongTimeout = 700 * time.Millisecond
	ts := startServer(t, cfg)

	var answeredPings, silentPings atomic.Int32
	answering := ts.connect(t, "key1")
	answering.c.SetPingHandler(func(data string) error {
		answeredPings.Add(1)
		return answering.c.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	msgs := make(chan []byte, 16)
	go func() { // ping frames reach the handler only inside a read
		for {
			_, m, err := answering.c.ReadMessage()
			if err != nil {
				close(msgs)
				return
			}
			msgs <- m
		}
	}()
	silent := ts.connect(t, "key1")
	silent.c.SetPingHandler(func(string) error { silentPings.Add(1); return nil }) // never answers

	// The silent one: pinged after about a second, then 4201 as a pusher:error and as the close.
	start := time.Now()
	if code := errorCode(t, silent.read()); code != float64(4201) {
		t.Fatalf("pusher:error code %v, want 4201", code)
	}
	silent.expectClose(4201)
	if silentPings.Load() == 0 {
		t.Fatal("closed for a missing pong without being pinged")
	}
	if took := time.Since(start); took < cfg.PongTimeout {
		t.Fatalf("closed %v after connecting: sooner than the pong timeout allows", took)
	}

	// The answering one was pinged as well, answered, and is still served.
	if answeredPings.Load() == 0 {
		t.Fatal("the answering socket was never pinged")
	}
	answering.send(`{"event":"pusher:ping","data":{}}`)
	select {
	case m, ok := <-msgs:
		if !ok || !strings.Contains(string(m), `"pusher:pong"`) {
			t.Fatalf("answering socket: %q (open: %v), want pusher:pong", m, ok)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("answering socket: no pong")
	}
}

// TestHandshakeHTTPRefusals: a request to /app/{key} that is no usable opening handshake gets a
// JSON error like every other HTTP refusal (426 for no WebSocket at all, with Upgrade; the
// WebSocket library's 405/400 for a broken one) and Sec-WebSocket-Version: 13 (RFC 6455 §4.4);
// the server keeps serving real clients.
func TestHandshakeHTTPRefusals(t *testing.T) {
	ts := startServer(t, oneApp())
	upgrade := http.Header{"Upgrade": {"websocket"}, "Connection": {"Upgrade"}, "Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}}
	for _, tc := range []struct {
		name, method string
		hdr          http.Header
		status       int
	}{
		{"post", "POST", upgrade, 405},
		{"plain GET", "GET", nil, 426},
		{"version 8", "GET", func() http.Header { h := upgrade.Clone(); h.Set("Sec-Websocket-Version", "8"); return h }(), 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, "http://"+ts.addr+"/app/key1?protocol=7", nil)
			for k, v := range tc.hdr {
				req.Header[k] = v
			}
			resp, out := doJSON(t, req)
			if msg, _ := out["error"].(string); resp.StatusCode != tc.status || msg == "" {
				t.Fatalf("%d %v, want %d and a JSON error", resp.StatusCode, out, tc.status)
			}
			if v := resp.Header.Get("Sec-WebSocket-Version"); v != "13" {
				t.Fatalf("Sec-WebSocket-Version %q, want 13", v)
			}
			if v := resp.Header.Get("Upgrade"); tc.status == 426 && v != "websocket" {
				t.Fatalf("426 with Upgrade %q, want websocket", v)
			}
		})
	}
	if n := ts.srv.Stats().Refused["not_websocket"]; n != 1 {
		t.Errorf("refusals not_websocket: %d, want 1", n)
	}
	if n := ts.srv.Stats().Refused["bad_handshake"]; n != 2 {
		t.Errorf("refusals bad_handshake: %d, want 2", n)
	}
	ts.connect(t, "key1").subscribe("orders", "")
}
