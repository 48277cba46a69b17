package pusher

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"github.com/frontdoorhq/frontdoor/internal/testenv"
)

// receiver is an HTTP webhook endpoint that checks every request the way pusher-php-server's
// webhook() does (X-Pusher-Key equals the key, X-Pusher-Signature equals
// hex(HMAC-SHA256(secret, body))) and records the batches.
type receiver struct {
	t   *testing.T
	srv *httptest.Server

	mu      sync.Mutex
	batches [][]webhookEvent
	status  []int // answers to give, in order; 200 once used up
	hang    chan struct{}
	calls   int
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{t: t}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(func() {
		r.mu.Lock()
		if r.hang != nil {
			close(r.hang)
			r.hang = nil
		}
		r.mu.Unlock()
		r.srv.Close()
	})
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	mac := hmac.New(sha256.New, []byte("secret1"))
	mac.Write(body)
	if req.Method != "POST" || req.Header.Get("X-Pusher-Key") != "key1" ||
		req.Header.Get("X-Pusher-Signature") != hex.EncodeToString(mac.Sum(nil)) ||
		req.Header.Get("Content-Type") != "application/json" {
		r.t.Errorf("webhook request fails pusher-php-server's check: %s key=%q sig=%q", req.Method, req.Header.Get("X-Pusher-Key"), req.Header.Get("X-Pusher-Signature"))
		w.WriteHeader(401)
		return
	}
	r.mu.Lock()
	r.calls++
	hang := r.hang
	status := 200
	if len(r.status) > 0 {
		status, r.status = r.status[0], r.status[1:]
	}
	r.mu.Unlock()
	if hang != nil {
		<-hang
	}
	if status == 200 {
		var b struct {
			TimeMS int64          `json:"time_ms"`
			Events []webhookEvent `json:"events"`
		}
		if err := json.Unmarshal(body, &b); err != nil || b.TimeMS < time.Now().Add(-time.Hour).UnixMilli() || len(b.Events) == 0 {
			r.t.Errorf("webhook body %s", body)
		}
		r.mu.Lock()
		r.batches = append(r.batches, b.Events)
		r.mu.Unlock()
	}
	w.WriteHeader(status)
}

// events returns every event received so far, flattened, as "name channel [user]".
func (r *receiver) events() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, b := range r.batches {
		for _, e := range b {
			s := e.Name + " " + e.Channel
			if e.UserID != "" {
				s += " " + e.UserID
			}
			out = append(out, s)
		}
	}
	return out
}

// waitFor polls until exactly want has arrived, then checks nothing more follows.
func (r *receiver) waitFor(want ...string) {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(r.events()) < len(want) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := r.events(); strings.Join(got, "|") != strings.Join(want, "|") {
		r.t.Fatalf("webhook events\n got: %q\nwant: %q", got, want)
	}
}

func withWebhook(url string, delay time.Duration, filter ...func(*WebhookConfig)) Config {
	return oneApp(func(a *AppConfig) {
		w := WebhookConfig{URL: url}
		for _, f := range filter {
			f(&w)
		}
		a.Webhooks = []WebhookConfig{w}
		a.WebhookDelay = delay
	})
}

// A page reload (leave and come back within the delay) is not an event; a real leave is,
// after the delay, and occupied/vacated bracket the member events in order.
func TestWebhookOccupancyAndPresence(t *testing.T) {
	r := newReceiver(t)
	ts := startServer(t, withWebhook(r.srv.URL+"/hook", 300*time.Millisecond))
	a := ts.connect(t, "key1")
	a.subscribe("orders", "")
	r.waitFor("channel_occupied orders")

	// Reload: unsubscribe and subscribe again at once.
	a.send(`{"event":"pusher:unsubscribe","data":{"channel":"orders"}}`)
	a.subscribe("orders", "")
	a.expectNothing()
	time.Sleep(600 * time.Millisecond) // past the delay: a cancelled vacate must not fire late
	r.waitFor("channel_occupied orders")

	// Presence: one user on two sockets is one member.
	u1 := ts.connect(t, "key1")
	u1.subscribe("presence-room", `{"user_id":"1"}`)
	u1b := ts.connect(t, "key1")
	u1b.subscribe("presence-room", `{"user_id":"1"}`)
	r.waitFor("channel_occupied orders", "channel_occupied presence-room", "member_added presence-room 1")
	u1.c.Close()
	time.Sleep(600 * time.Millisecond)
	r.waitFor("channel_occupied orders", "channel_occupied presence-room", "member_added presence-room 1")
	u1b.c.Close()
	r.waitFor("channel_occupied orders", "channel_occupied presence-room", "member_added presence-room 1",
		"member_removed presence-room 1", "channel_vacated presence-room")
	a.send(`{"event":"pusher:unsubscribe","data":{"channel":"orders"}}`)
	r.waitFor("channel_occupied orders", "channel_occupied presence-room", "member_added presence-room 1",
		"member_removed presence-room 1", "channel_vacated presence-room", "channel_vacated orders")
}

func TestWebhookClientEventsCacheMissAndFilters(t *testing.T) {
	r := newReceiver(t)
	ts := startServer(t, withWebhook(r.srv.URL, 100*time.Millisecond, func(w *WebhookConfig) {
		w.Events = []string{"client_event", "cache_miss"}
	}))
	a, b := ts.connect(t, "key1"), ts.connect(t, "key1")
	a.subscribe("presence-chat", `{"user_id":"7"}`)
	b.subscribe("presence-chat", `{"user_id":"8"}`)
	a.read() // member_added 8
	b.send(`{"event":"client-typing","channel":"presence-chat","data":{"on":true}}`)
	a.read()
	// Two subscribers to an empty cache channel at once: one cache_miss.
	a.subscribe("cache-prices", "")
	a.read() // pusher:cache_miss
	b.subscribe("cache-prices", "")
	b.read()
	r.waitFor("client_event presence-chat 8", "cache_miss cache-prices")
	r.mu.Lock()
	ev := r.batches[0][0]
	r.mu.Unlock()
	if ev.Event != "client-typing" || ev.Data == nil || *ev.Data != `{"on":true}` || ev.SocketID != b.socketID {
		t.Fatalf("client_event fields %+v", ev)
	}

	// A channel prefix filter.
	r2 := newReceiver(t)
	ts2 := startServer(t, withWebhook(r2.srv.URL, 100*time.Millisecond, func(w *WebhookConfig) { w.ChannelPrefix = "private-" }))
	c := ts2.connect(t, "key1")
	c.subscribe("public-news", "")
	c.subscribe("private-inbox", "")
	r2.waitFor("channel_occupied private-inbox")
}

// Events that happen together go in one request; a failing target is retried with backoff
// until it answers, in order, and the socket path never waits for it.
func TestWebhookBatchingRetryAndIsolation(t *testing.T) {
	r := newReceiver(t)
	r.status = []int{500, 503}
	cfg := withWebhook(r.srv.URL, 100*time.Millisecond)
	cfg.Apps[0].ClientEventRate = 1000
	ts := startServer(t, cfg)
	app := ts.srv.appByID("app1")
	for i := 0; i < 10; i++ {
		ts.srv.emitWebhook(app, webhookEvent{Name: "channel_occupied", Channel: "c" + itoa(i)})
	}
	var want []string
	for i := 0; i < 10; i++ {
		want = append(want, "channel_occupied c"+itoa(i))
	}
	r.waitFor(want...)
	r.mu.Lock()
	calls, batches := r.calls, len(r.batches)
	r.mu.Unlock()
	if batches != 1 || calls != 3 {
		t.Fatalf("want one batch after two failed attempts, got %d batches in %d calls", batches, calls)
	}
	// The receiver records the batch before it answers: the server counts it once the 200 is read.
	for deadline := time.Now().Add(10 * time.Second); ts.srv.WebhookStats().Sent == 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if st := ts.srv.WebhookStats(); st.Sent != 1 || st.Failed != 2 || st.Dropped != 0 {
		t.Fatalf("stats %+v", st)
	}

	// The receiver now hangs: publishes and client events still reach sockets.
	r.mu.Lock()
	r.hang = make(chan struct{})
	r.mu.Unlock()
	a, b := ts.connect(t, "key1"), ts.connect(t, "key1")
	a.subscribe("private-x", "")
	b.subscribe("private-x", "")
	for i := 0; i < 50; i++ {
		b.send(`{"event":"client-n","channel":"private-x","data":{}}`)
		if f := a.read(); f.Event != "client-n" {
			t.Fatalf("frame %+v", f)
		}
	}
}

// A target that never recovers: the batch is dropped after WebhookRetryFor and counted.
func TestWebhookDroppedAfterRetries(t *testing.T) {
	r := newReceiver(t)
	r.status = []int{500, 500, 500, 500, 500, 500, 500, 500}
	cfg := withWebhook(r.srv.URL, 100*time.Millisecond)
	cfg.WebhookRetryFor = 600 * time.Millisecond
	ts := startServer(t, cfg)
	ts.srv.emitWebhook(ts.srv.appByID("app1"), webhookEvent{Name: "channel_occupied", Channel: "x"})
	deadline := time.Now().Add(10 * time.Second)
	for ts.srv.WebhookStats().Dropped == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if st := ts.srv.WebhookStats(); st.Dropped != 1 || st.Sent != 0 || st.Failed < 2 {
		t.Fatalf("stats %+v", st)
	}
	// A 4xx is not retried.
	r2 := newReceiver(t)
	r2.status = []int{404}
	ts2 := startServer(t, withWebhook(r2.srv.URL, 100*time.Millisecond))
	ts2.srv.emitWebhook(ts2.srv.appByID("app1"), webhookEvent{Name: "channel_occupied", Channel: "x"})
	for ts2.srv.WebhookStats().Dropped == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if st := ts2.srv.WebhookStats(); st.Dropped != 1 || st.Failed != 1 {
		t.Fatalf("4xx stats %+v", st)
	}
}

// A path target is delivered through WebhookLocal (frontdoor's PHP upstream), not the network.
func TestWebhookLocalPath(t *testing.T) {
	got := make(chan string, 1)
	cfg := withWebhook("/pusher/webhook", 100*time.Millisecond)
	cfg.WebhookHost = "shop.example"
	cfg.WebhookLocal = func(ctx *fasthttp.RequestCtx) {
		got <- string(ctx.Method()) + " " + string(ctx.Host()) + string(ctx.RequestURI()) + " " + string(ctx.Request.Header.Peek("X-Pusher-Key")) + " " + ctx.RemoteIP().String()
		ctx.SetStatusCode(200)
	}
	ts := startServer(t, cfg)
	ts.connect(t, "key1").subscribe("orders", "")
	select {
	case g := <-got:
		if g != "POST shop.example/pusher/webhook key1 127.0.0.1" {
			t.Fatalf("local delivery %q", g)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no local delivery")
	}
	// Without WebhookLocal, a path target is refused at start-up with the reason.
	if _, err := NewServer(withWebhook("/pusher/webhook", 0), zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "/pusher/webhook") {
		t.Fatalf("NewServer: %v", err)
	}
	bad := withWebhook("ftp://x/hook", 0)
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "webhooks[0]") || !strings.Contains(err.Error(), "ftp://x/hook") {
		t.Fatalf("validate: %v", err)
	}
}

// A deploy (Shutdown) does not lose webhooks: the batch being retried, and the member_removed and
// channel_vacated that the sockets' own departure causes (not yet due: webhook_delay is 3 s) are
// delivered before Shutdown returns.
func TestShutdownFlushesWebhooks(t *testing.T) {
	r := newReceiver(t)
	r.status = []int{503} // the first attempt fails: a batch is waiting to be retried
	ts := startServer(t, withWebhook(r.srv.URL, 3*time.Second))
	a := ts.connect(t, "key1")
	a.subscribe("presence-room", `{"user_id":"1"}`)
	deadline := time.Now().Add(10 * time.Second)
	for r.attempts() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no webhook attempt")
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	want := "channel_occupied presence-room|member_added presence-room 1|member_removed presence-room 1|channel_vacated presence-room"
	if got := strings.Join(r.events(), "|"); got != want {
		t.Fatalf("delivered by the time Shutdown returned:\n got %q\nwant %q", got, want)
	}
	if st := ts.srv.WebhookStats(); st.Dropped != 0 {
		t.Fatalf("dropped %d", st.Dropped)
	}
}

// Without Redis, what Shutdown could not deliver in time is counted dropped.
func TestShutdownCountsUndeliveredWebhooks(t *testing.T) {
	r := newReceiver(t)
	r.status = []int{503, 503, 503, 503, 503, 503, 503, 503}
	ts := startServer(t, withWebhook(r.srv.URL, time.Second))
	a := ts.connect(t, "key1")
	a.subscribe("orders", "")
	deadline := time.Now().Add(10 * time.Second)
	for r.attempts() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no webhook attempt")
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_ = ts.srv.Shutdown(ctx)
	for ts.srv.WebhookStats().Dropped == 0 { // channel_occupied, still being retried
		if time.Now().After(deadline) {
			t.Fatal("the undelivered channel_occupied is not counted")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (r *receiver) attempts() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

// lockedBuffer is the shared log sink of internal/testenv.
type lockedBuffer = testenv.LogBuffer

// A webhook URL's credentials never reach the log or a config error.
func TestWebhookURLCredentialsRedacted(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := "http://hooks:p@ss-s3cret@" + ln.Addr().String() + "/hook" // refused once closed
	ln.Close()
	var logs lockedBuffer
	cfg := withWebhook(target, 100*time.Millisecond)
	cfg.WebhookRetryFor = 600 * time.Millisecond
	s, err := NewServer(cfg, zerolog.New(&logs))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	s.emitWebhook(s.appByID("app1"), webhookEvent{Name: "channel_occupied", Channel: "orders"})
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "webhook batch dropped") {
		if time.Now().After(deadline) {
			t.Fatalf("no drop logged:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if out := logs.String(); strings.Contains(out, "s3cret") || !strings.Contains(out, "hooks:xxxxx@") {
		t.Fatalf("log shows the webhook password or no redacted URL:\n%s", out)
	}

	bad := withWebhook("http://hooks:p@ss-s3cret@bad host/hook", time.Second)
	if err := bad.Validate(); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("config error %v", err)
	}
}

// FuzzRedactURL: whatever the URL, a password written in its userinfo does not come out.
func FuzzRedactURL(f *testing.F) {
	for _, s := range []string{"p@ssw0rd", "secret", "a:b@c", "pa%40ss", "p ss", "päss", "::::"} {
		f.Add("redis", s)
	}
	f.Add("https", "hunter22")
	f.Fuzz(func(t *testing.T, scheme, pw string) {
		if len(pw) < 4 || strings.ContainsAny(pw, "/?#") || strings.ContainsAny(scheme, ":/?#@") {
			return // not a password inside an authority
		}
		raw := scheme + "://u:" + pw + "@h.example:6379/0"
		got := RedactURL(raw)
		_, rest, _ := strings.Cut(got, "://") // the scheme may come back lower-cased
		if strings.Contains(rest, pw) && !strings.Contains("u:xxxxx@h.example:6379/0", pw) {
			t.Fatalf("RedactURL(%q) = %q shows the password", raw, got)
		}
	})
}
