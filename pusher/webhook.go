package pusher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
)

// WebhookConfig is one target of an app's webhooks (§9).
type WebhookConfig struct {
	// URL is an absolute http(s):// URL, or a path (/pusher/webhook) on the app itself,
	// delivered through frontdoor's own PHP upstream.
	URL string `yaml:"url"`
	// Events filters by name (channel_occupied, channel_vacated, member_added, member_removed,
	// client_event, cache_miss); empty sends every event.
	Events []string `yaml:"events"`
	// ChannelPrefix, when set, sends only events of channels whose name starts with it.
	ChannelPrefix string `yaml:"channel_prefix"`
}

// webhookEvents are the events frontdoor sends (§9).
var webhookEvents = map[string]bool{
	"channel_occupied": true, "channel_vacated": true, "member_added": true,
	"member_removed": true, "client_event": true, "cache_miss": true,
}

func (w WebhookConfig) validate() error {
	var errs []error
	switch u, err := url.Parse(w.URL); {
	case w.URL == "":
		errs = append(errs, errors.New("url: empty; an http(s):// URL or a path such as /pusher/webhook"))
	case err != nil:
		errs = append(errs, fmt.Errorf("url: invalid value %q: %v", RedactURL(w.URL), urlErrorReason(err)))
	case strings.HasPrefix(w.URL, "/"):
	case (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		errs = append(errs, fmt.Errorf("url: invalid value %q: want http(s)://host/path or a path such as /pusher/webhook", RedactURL(w.URL)))
	}
	for _, e := range w.Events {
		if !webhookEvents[e] {
			errs = append(errs, fmt.Errorf("events: unknown event %q (channel_occupied, channel_vacated, member_added, member_removed, client_event, cache_miss)", e))
		}
	}
	return errors.Join(errs...)
}

// checkWebhookPaths refuses path targets when nothing serves paths (pusher used without the PHP
// front door); NewServer and Reload call it, Validate cannot know.
func (c *Config) checkWebhookPaths() error {
	if c.WebhookLocal != nil {
		return nil
	}
	for _, a := range c.Apps {
		for _, w := range a.Webhooks {
			if strings.HasPrefix(w.URL, "/") {
				return fmt.Errorf("app %s: webhook url %q is a path, but no PHP upstream serves paths here; give an http(s):// URL", a.ID, w.URL)
			}
		}
	}
	return nil
}

func (w *WebhookConfig) wants(ev *webhookEvent) bool {
	if !strings.HasPrefix(ev.Channel, w.ChannelPrefix) {
		return false
	}
	if len(w.Events) == 0 {
		return true
	}
	for _, e := range w.Events {
		if e == ev.Name {
			return true
		}
	}
	return false
}

// webhookEvent is one entry of a webhook's "events" array, in Pusher's field names (§9).
type webhookEvent struct {
	Name     string  `json:"name"`
	Channel  string  `json:"channel"`
	UserID   string  `json:"user_id,omitempty"`
	Event    string  `json:"event,omitempty"`
	Data     *string `json:"data,omitempty"`
	SocketID string  `json:"socket_id,omitempty"`
}

// Webhook batching: events for one target that arrive within batchWindow of the first go in one
// request (Soketi uses 50 ms), at most maxBatch per request.
const (
	batchWindow  = 50 * time.Millisecond
	maxBatch     = 100
	webhookQueue = 10000 // events waiting per target; beyond, new events are dropped and counted
)

// webhookTarget is one app's queue to one URL and the goroutine that drains it in order, so a
// slow or dead target delays only its own events, never a socket (issue: never slows the socket
// path) and never another target.
type webhookTarget struct {
	app   *App
	url   string
	queue chan queuedWebhook
	done  chan struct{} // closed when the goroutine has returned
	// retired is closed when a reload removed the app (an app added back is a new App, with
	// its new secret) or its URL: the goroutine drops what it holds and returns.
	retired chan struct{}
}

// queuedWebhook is an event waiting for its target; id names it in the broker's journal.
type queuedWebhook struct {
	ev webhookEvent
	id uint64
}

// webhooks is the server's webhook side (§9): the targets with their queues and goroutines, the
// delayed downward transitions and their timer, cache_miss dedup, and the journal a clustered
// broker keeps. Server holds one; the socket and API paths only ever queue.
type webhooks struct {
	mu      sync.Mutex
	targets map[string]*webhookTarget // app id + "\x00" + url
	client  *fasthttp.Client
	seq     atomic.Uint64 // journal ids
	drain   chan struct{} // closed by Shutdown: deliver what is queued, then stop

	sent, failed, dropped atomic.Uint64
	droppedLogged         atomic.Int64

	local    fasthttp.RequestHandler // serves path targets (Config.WebhookLocal); nil refuses them
	host     string                  // Host header of path targets
	timeout  time.Duration           // one delivery attempt
	retryFor time.Duration           // how long a batch is retried

	pendingDowns pendingDowns
	deferredUps  deferredUps
	cacheMisses  sync.Map // app id + "\x00" + channel → when cache_miss was last sent (Unix ns)

	log     zerolog.Logger
	stop    <-chan struct{}      // the server's: targets stop at once, undelivered events are accounted
	cluster *cluster             // registrations of cluster-wide transitions, and the journal
	current func(id string) *App // the app served under id now (Server.appByID)
}

// newWebhooks applies cfg's webhook settings and their defaults.
func newWebhooks(cfg *Config, log zerolog.Logger, stop <-chan struct{}, c *cluster, current func(string) *App) *webhooks {
	w := &webhooks{local: cfg.WebhookLocal, host: cfg.WebhookHost, timeout: cfg.WebhookTimeout, retryFor: cfg.WebhookRetryFor,
		drain: make(chan struct{}), log: log, stop: stop, cluster: c, current: current}
	if w.host == "" {
		w.host = "localhost"
	}
	if w.timeout == 0 {
		w.timeout = 10 * time.Second
	}
	if w.retryFor == 0 {
		w.retryFor = 5 * time.Minute
	}
	w.client = &fasthttp.Client{Name: "frontdoor-webhooks", MaxConnsPerHost: 8,
		ReadTimeout: w.timeout, WriteTimeout: w.timeout, MaxIdleConnDuration: time.Minute}
	return w
}

// emitWebhook queues ev for every target of the app that wants it. It never blocks.
func (s *Server) emitWebhook(app *App, ev webhookEvent) { s.webhooks.emit(app, ev) }

// WebhookJournal is implemented by a Broker that keeps each webhook event until it is delivered,
// so the events a node could not deliver before it died or stopped are delivered by another
// node (Node.AdoptWebhooks). Both calls must return at once: they run on the socket path.
type WebhookJournal interface {
	// RecordWebhook keeps entry under id until WebhooksDone names it.
	RecordWebhook(id uint64, entry []byte)
	// WebhooksDone forgets events that were delivered or given up on.
	WebhooksDone(ids []uint64)
}

// journalEntry is a webhook event as a WebhookJournal keeps it.
type journalEntry struct {
	App   string       `json:"app"`
	URL   string       `json:"url"`
	Event webhookEvent `json:"event"`
}

func (w *webhooks) journal() WebhookJournal {
	j, _ := w.cluster.broker.(WebhookJournal)
	return j
}

// emit queues ev for every target of the app that wants it. It never blocks.
func (w *webhooks) emit(app *App, ev webhookEvent) {
	cfg := app.config()
	for i := range cfg.Webhooks {
		wc := &cfg.Webhooks[i]
		if wc.wants(&ev) {
			w.queue(app, wc.URL, ev)
		}
	}
}

// queue hands ev to the target's goroutine, recording it in the journal first so the
// record always precedes its removal.
// The target is looked up and the event queued under w.mu, which a reload takes to retire
// targets: nothing lands in a retired target's queue after its goroutine emptied it.
func (w *webhooks) queue(app *App, url string, ev webhookEvent) {
	q := queuedWebhook{ev: ev, id: w.seq.Add(1)}
	j := w.journal()
	if j != nil {
		b, _ := json.Marshal(journalEntry{App: app.config().ID, URL: url, Event: ev})
		j.RecordWebhook(q.id, b)
	}
	w.mu.Lock()
	t, queued := w.target(app, url), false
	if t != nil {
		select {
		case t.queue <- q:
			queued = true
		default:
		}
	}
	w.mu.Unlock()
	if queued {
		return
	}
	if j != nil {
		j.WebhooksDone([]uint64{q.id})
	}
	w.dropped.Add(1)
	if t == nil {
		w.logDrop(app.config().ID, url, 1, "app removed by a reload")
	} else {
		w.logDrop(app.config().ID, url, 1, "queue full")
	}
}

// AdoptWebhooks implements Node: events another node journaled and did not deliver, oldest
// first. Each goes to its target if this node's app still has it; otherwise it is dropped.
func (s *Server) AdoptWebhooks(entries [][]byte) {
	adopted := 0
	for _, raw := range entries {
		var e journalEntry
		if json.Unmarshal(raw, &e) != nil {
			s.webhooks.dropped.Add(1)
			continue
		}
		app := s.appByID(e.App)
		if app == nil || !app.hasWebhook(e.URL) {
			s.webhooks.dropped.Add(1)
			s.log.Warn().Str("app", e.App).Str("url", RedactURL(e.URL)).Str("event", e.Event.Name).
				Msg("webhook left by a stopped node dropped: this node has no such app or target")
			continue
		}
		s.webhooks.queue(app, e.URL, e.Event)
		adopted++
	}
	if adopted > 0 {
		s.log.Info().Int("events", adopted).Msg("cluster: delivering webhooks a stopped node left undelivered")
	}
}

func (a *App) hasWebhook(url string) bool {
	for _, w := range a.config().Webhooks {
		if w.URL == url {
			return true
		}
	}
	return false
}

// target is app's target for the URL, started on first use; nil when app is no longer served.
// The caller holds w.mu.
func (w *webhooks) target(app *App, target string) *webhookTarget {
	if w.current(app.config().ID) != app {
		return nil
	}
	k := app.config().ID + "\x00" + target
	if w.targets == nil {
		w.targets = map[string]*webhookTarget{}
	}
	t := w.targets[k]
	if t != nil && t.app != app { // the app was added back and reload has not retired it yet
		w.retire(k, t)
		t = nil
	}
	if t == nil {
		t = &webhookTarget{app: app, url: target, queue: make(chan queuedWebhook, webhookQueue), done: make(chan struct{}),
			retired: make(chan struct{})}
		w.targets[k] = t
		go w.run(t)
	}
	return t
}

// reload retires the targets a reload left behind: those of an app no longer served (removed,
// or removed and added back: a new App, with its new secret) and those of a URL its app no
// longer lists. Their goroutines end; the events they held are dropped and counted.
func (w *webhooks) reload() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for k, t := range w.targets {
		if w.current(t.app.config().ID) != t.app || !t.app.hasWebhook(t.url) {
			w.retire(k, t)
		}
	}
}

// retire stops t; the caller holds w.mu.
func (w *webhooks) retire(k string, t *webhookTarget) {
	close(t.retired)
	delete(w.targets, k)
}

// abandon drops what a retired target holds, batch and queue: nobody wants it any more, so it
// leaves the journal too rather than go to another node.
func (w *webhooks) abandon(t *webhookTarget, batch []queuedWebhook) {
	for more := true; more; {
		select {
		case q := <-t.queue:
			batch = append(batch, q)
		default:
			more = false
		}
	}
	if len(batch) == 0 {
		return
	}
	w.dropped.Add(uint64(len(batch)))
	w.settled(batch)
	w.logDrop(t.app.config().ID, t.url, len(batch), "target removed by a reload")
}

func (w *webhooks) run(t *webhookTarget) {
	defer close(t.done)
	batch := make([]queuedWebhook, 0, maxBatch)
	for {
		select {
		case <-w.stop:
			return
		case <-w.drain:
			w.drainTarget(t, batch)
			return
		case <-t.retired:
			w.abandon(t, batch[:0])
			return
		case q := <-t.queue:
			batch = append(batch[:0], q)
		}
		window := time.NewTimer(batchWindow)
	collect:
		for len(batch) < maxBatch {
			select {
			case q := <-t.queue:
				batch = append(batch, q)
			case <-window.C:
				break collect
			case <-w.drain:
				break collect // shutting down: no point waiting out the window
			case <-w.stop:
				window.Stop()
				w.undelivered(batch)
				return
			case <-t.retired:
				window.Stop()
				w.abandon(t, batch)
				return
			}
		}
		window.Stop()
		w.deliver(t, batch)
	}
}

// drainTarget delivers everything queued for t, in batches, until the queue is empty or
// the server stops.
func (w *webhooks) drainTarget(t *webhookTarget, batch []queuedWebhook) {
	for {
		batch = batch[:0]
	fill:
		for len(batch) < maxBatch {
			select {
			case q := <-t.queue:
				batch = append(batch, q)
			default:
				break fill
			}
		}
		if len(batch) == 0 {
			return
		}
		if !w.deliver(t, batch) {
			return
		}
	}
}

// undelivered accounts for events the server stopped before delivering: with a journal
// they stay in it for another node; without one they are lost, and counted.
func (w *webhooks) undelivered(batch []queuedWebhook) {
	if len(batch) == 0 || w.journal() != nil {
		return
	}
	w.dropped.Add(uint64(len(batch)))
	w.log.Error().Int("events", len(batch)).Msg("webhook events not delivered before shutdown")
}

// flush is Shutdown's last word on webhooks: the downward transitions still waiting out
// WebhookDelay are due now (the sockets are gone), and every target delivers what it has queued
// while ctx allows. What is left is counted dropped, or, with a journal, left for another node.
func (w *webhooks) flush(ctx context.Context) {
	if ctx.Err() != nil {
		return // no time left: Shutdown was asked to stop now
	}
	w.flushTransitions(ctx, time.Now().Add(24*time.Hour))
	close(w.drain)
	w.mu.Lock()
	targets := make([]*webhookTarget, 0, len(w.targets))
	for _, t := range w.targets {
		targets = append(targets, t)
	}
	w.mu.Unlock()
	for _, t := range targets {
		select {
		case <-t.done:
		case <-ctx.Done():
		}
	}
}

// undeliveredAtStop accounts for what is still queued once the server has stopped.
func (w *webhooks) undeliveredAtStop() {
	w.mu.Lock()
	targets := make([]*webhookTarget, 0, len(w.targets))
	for _, t := range w.targets {
		targets = append(targets, t)
	}
	w.mu.Unlock()
	var left []queuedWebhook
	for _, t := range targets {
		for {
			select {
			case q := <-t.queue:
				left = append(left, q)
				continue
			default:
			}
			break
		}
	}
	w.undelivered(left)
}

// deliver sends one batch, retrying with backoff on 5xx, 408, 429, timeouts and
// connection errors until WebhookRetryFor has passed (§9: Pusher retries for 5 minutes). Other
// 4xx answers will not change on retry: the batch is dropped at once, with a log line naming the
// status.
//
// It reports whether the batch is settled (delivered or given up on, and so removed from the
// journal); false means the server stopped first.
func (w *webhooks) deliver(t *webhookTarget, batch []queuedWebhook) bool {
	cfg := t.app.config()
	events := make([]webhookEvent, len(batch))
	for i, q := range batch {
		events[i] = q.ev
	}
	body, _ := json.Marshal(struct {
		TimeMS int64          `json:"time_ms"`
		Events []webhookEvent `json:"events"`
	}{time.Now().UnixMilli(), events})
	sig := hmacHex(cfg.Secret, string(body))
	deadline := time.Now().Add(w.retryFor)
	backoff := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		status, err := w.post(t.url, cfg.Key, sig, body)
		if err == nil && status >= 200 && status < 300 {
			w.sent.Add(1)
			w.settled(batch)
			return true
		}
		w.failed.Add(1)
		retry := err != nil || status >= 500 || status == 408 || status == 429
		reason := fmt.Sprintf("status %d", status)
		if err != nil {
			reason = err.Error()
		}
		if !retry || time.Now().Add(backoff).After(deadline) {
			w.dropped.Add(uint64(len(events)))
			w.log.Error().Str("app", cfg.ID).Str("url", RedactURL(t.url)).Int("events", len(events)).Int("attempts", attempt).
				Str("reason", reason).Msg("webhook batch dropped")
			w.settled(batch)
			return true
		}
		w.log.Warn().Str("app", cfg.ID).Str("url", RedactURL(t.url)).Int("attempt", attempt).Str("reason", reason).
			Dur("retry_in", backoff).Msg("webhook delivery failed; retrying")
		select {
		case <-w.stop:
			w.undelivered(batch)
			return false
		case <-t.retired:
			w.abandon(t, batch)
			return false
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

// settled removes a delivered or abandoned batch from the journal.
func (w *webhooks) settled(batch []queuedWebhook) {
	j := w.journal()
	if j == nil {
		return
	}
	ids := make([]uint64, len(batch))
	for i, q := range batch {
		ids[i] = q.id
	}
	j.WebhooksDone(ids)
}

// post makes one attempt. A path goes through WebhookLocal (the PHP front door) as if
// it had arrived from loopback; a URL goes over the network.
func (w *webhooks) post(target, key, sig string, body []byte) (int, error) {
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	req.Header.Set("X-Pusher-Key", key)
	req.Header.Set("X-Pusher-Signature", sig)
	req.Header.Set("User-Agent", "frontdoor-webhooks")
	req.SetBody(body)
	if strings.HasPrefix(target, "/") {
		req.SetRequestURI(target)
		req.Header.SetHost(w.host)
		var ctx fasthttp.RequestCtx
		ctx.Init(req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}, nil)
		w.local(&ctx)
		_ = ctx.Response.Body() // drains a streamed answer, so the upstream exchange completes
		return ctx.Response.StatusCode(), nil
	}
	req.SetRequestURI(target)
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	resp.SkipBody = true
	if err := w.client.DoTimeout(req, resp, w.timeout); err != nil {
		return 0, err
	}
	return resp.StatusCode(), nil
}

func (w *webhooks) logDrop(app, url string, n int, reason string) {
	now := time.Now().UnixNano()
	last := w.droppedLogged.Load()
	if now-last < int64(10*time.Second) || !w.droppedLogged.CompareAndSwap(last, now) {
		return
	}
	w.log.Error().Str("app", app).Str("url", RedactURL(url)).Int("events", n).Str("reason", reason).
		Uint64("dropped_total", w.dropped.Load()).Msg("webhook events dropped")
}

// WebhookStats are the webhook counters for metrics.
type WebhookStats struct {
	Sent    uint64 // batches acknowledged with 2xx
	Failed  uint64 // attempts that failed (each retry counts)
	Dropped uint64 // events given up on: queue full, retries exhausted, or (without Redis) not delivered before shutdown
}

// urlErrorReason is url.Parse's complaint without the URL it quotes (which may hold a password).
func urlErrorReason(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// RedactURL hides the password of a URL's userinfo (https://user:pass@host/…, redis://:p@ss@host)
// for logs and error messages. The password ends at the last '@' of the authority, as url.Parse
// reads it, whether or not the rest of the URL parses; the user name is kept, as url.URL.Redacted keeps it.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err == nil {
		return u.Redacted()
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		scheme, rest = "", raw
	} else {
		scheme += "://"
	}
	authority, path := rest, ""
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority, path = rest[:i], rest[i:]
	}
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		if user, _, hasPass := strings.Cut(authority[:i], ":"); hasPass {
			return scheme + user + ":xxxxx@" + authority[i+1:] + path
		}
	}
	return raw
}

// WebhookStats returns the webhook counters.
func (s *Server) WebhookStats() WebhookStats {
	return WebhookStats{Sent: s.webhooks.sent.Load(), Failed: s.webhooks.failed.Load(), Dropped: s.webhooks.dropped.Load()}
}
