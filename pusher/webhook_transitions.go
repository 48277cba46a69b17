package pusher

import (
	"context"
	"strings"
	"sync"
	"time"
)

// Webhooks report what the app would see if it watched the whole cluster: a channel is occupied
// when its first subscriber on any node arrives, vacated when the last one anywhere has been gone
// for WebhookDelay, and likewise for presence members (§9). Locally the hub already knows each
// node's transitions; across nodes, occupancy and membership are registered with the broker under
// names no client channel can have ('#' and ':' are not allowed in channel names, §5.1), so the
// broker's first/last answers, and its removal of a dead node's entries, give one webhook per
// cluster-wide transition.
const (
	occupiedPrefix = "#occupied:" // user "*": the node occupies the channel
	membersPrefix  = "#members:"  // user: the member is on the node, for member_* webhooks
)

// pendingDowns holds the downward transitions waiting out WebhookDelay. A matching upward
// transition within the delay cancels one: nothing happened, as far as the app can tell.
type pendingDowns struct {
	mu      sync.Mutex
	pending map[string]*pendingDown
	queue   []*pendingDown // in the order they happened, so webhooks keep that order
}

type pendingDown struct {
	key      string
	app      *App
	reg      Membership
	ev       webhookEvent
	due      time.Time
	canceled bool
}

func registration(app *App, prefix, channel, user string) Membership {
	return Membership{App: app.config().ID, Channel: prefix + channel, User: user}
}

func (m Membership) key() string { return m.App + "\x00" + m.Channel + "\x00" + m.User }

// deferredUps are upward transitions the broker could not register: whether they are the
// cluster's (no other node had the channel or member) is known only when the rebuild registers
// them (Reconnected), which sends the webhook then. Sent at once instead, it went out a second
// time from the node that registered the same channel meanwhile.
type deferredUps struct {
	mu sync.Mutex
	m  map[string]deferredUp
}

type deferredUp struct {
	app *App
	ev  webhookEvent
}

// up is called on this node's upward transition ev; it reports whether the webhook is due.
func (w *webhooks) up(ctx context.Context, app *App, reg Membership, ev webhookEvent) bool {
	k := reg.key()
	w.pendingDowns.mu.Lock()
	if p := w.pendingDowns.pending[k]; p != nil {
		p.canceled = true
		delete(w.pendingDowns.pending, k)
		w.pendingDowns.mu.Unlock()
		return false // still registered: it never went down cluster-wide
	}
	w.pendingDowns.mu.Unlock()
	first, err := w.cluster.register(ctx, reg, true)
	if err != nil {
		w.deferredUps.mu.Lock()
		if w.deferredUps.m == nil {
			w.deferredUps.m = map[string]deferredUp{}
		}
		w.deferredUps.m[k] = deferredUp{app, ev}
		w.deferredUps.mu.Unlock()
		return false
	}
	return first
}

// registered is called by the rebuild for each webhook registration it made: a deferred
// upward transition's webhook is due if the registration was the cluster's first.
func (w *webhooks) registered(m Membership, first bool) {
	k := m.key()
	w.deferredUps.mu.Lock()
	d, ok := w.deferredUps.m[k]
	delete(w.deferredUps.m, k)
	w.deferredUps.mu.Unlock()
	if ok && first {
		w.emit(d.app, d.ev)
	}
}

// forgetDeferred drops deferred upward transitions whose registration the rebuild did not find
// here (the channel or member went away before it ran): nothing was registered, nothing is said.
func (w *webhooks) forgetDeferred(here map[string]bool) {
	w.deferredUps.mu.Lock()
	for k := range w.deferredUps.m {
		if !here[k] {
			delete(w.deferredUps.m, k)
		}
	}
	w.deferredUps.mu.Unlock()
}

// down schedules ev for after the app's WebhookDelay, unless webhookUp cancels it.
func (w *webhooks) down(app *App, reg Membership, ev webhookEvent) {
	p := &pendingDown{key: reg.key(), app: app, reg: reg, ev: ev, due: time.Now().Add(app.config().WebhookDelay)}
	w.pendingDowns.mu.Lock()
	if w.pendingDowns.pending == nil {
		w.pendingDowns.pending = map[string]*pendingDown{}
	}
	if old := w.pendingDowns.pending[p.key]; old != nil {
		old.canceled = true
	}
	w.pendingDowns.pending[p.key] = p
	w.pendingDowns.queue = append(w.pendingDowns.queue, p)
	w.pendingDowns.mu.Unlock()
}

// flushTransitions runs the due downward transitions, in the order they happened; ctx is the
// caller's (Shutdown's, or none for the timer).
func (w *webhooks) flushTransitions(ctx context.Context, now time.Time) {
	w.pendingDowns.mu.Lock()
	var due []*pendingDown
	keep := w.pendingDowns.queue[:0]
	for _, p := range w.pendingDowns.queue {
		switch {
		case p.canceled:
		case !now.Before(p.due):
			due = append(due, p)
			delete(w.pendingDowns.pending, p.key)
		default:
			keep = append(keep, p)
		}
	}
	clear(w.pendingDowns.queue[len(keep):])
	w.pendingDowns.queue = keep
	w.pendingDowns.mu.Unlock()
	for _, p := range due {
		last, err := w.cluster.register(ctx, p.reg, false)
		if err != nil {
			// The registration stays in the broker: the rebuild once it answers again finds it
			// lost (Reconnected) and sends this webhook then, or, should this node be declared
			// dead first, the node that reaps it does; either way once, and only if no other
			// node has the channel or member by then. Sent now as well, it went out twice.
			continue
		}
		if last {
			w.emit(p.app, p.ev)
		}
	}
}

// timer drives flushTransitions; 50 ms is well inside Pusher's "up to 3 s".
func (w *webhooks) timer() {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case now := <-t.C:
			w.flushTransitions(context.Background(), now)
		}
	}
}

// pendingRegistrations are the downward transitions still waiting: their registrations stay.
func (w *webhooks) pendingRegistrations() []Membership {
	w.pendingDowns.mu.Lock()
	defer w.pendingDowns.mu.Unlock()
	out := make([]Membership, 0, len(w.pendingDowns.pending))
	for _, p := range w.pendingDowns.pending {
		out = append(out, p.reg)
	}
	return out
}

// gone handles a registration the broker dropped for good (its node died, or it left
// while the broker was unreachable): the downward webhook, at once.
func (w *webhooks) gone(app *App, m Membership) bool {
	switch {
	case strings.HasPrefix(m.Channel, occupiedPrefix):
		w.emit(app, webhookEvent{Name: "channel_vacated", Channel: strings.TrimPrefix(m.Channel, occupiedPrefix)})
	case strings.HasPrefix(m.Channel, membersPrefix):
		w.emit(app, webhookEvent{Name: "member_removed", Channel: strings.TrimPrefix(m.Channel, membersPrefix), UserID: m.User})
	default:
		return false
	}
	return true
}

// registrations are this node's webhook registrations for Reconnected to restore.
func (w *webhooks) registrations(app *App) []Membership {
	if len(app.config().Webhooks) == 0 {
		return nil
	}
	var out []Membership
	for _, ch := range app.hub.channelsSnapshot() {
		out = append(out, registration(app, occupiedPrefix, ch.name, "*"))
		if ch.typ.kind == kindPresence {
			for _, m := range ch.memberList() {
				out = append(out, registration(app, membersPrefix, ch.name, m.ID))
			}
		}
	}
	return out
}

// cacheMiss sends cache_miss at most once a second per channel on this node, so
// simultaneous subscribers to an empty cache channel make one webhook (§5.6).
func (w *webhooks) cacheMiss(app *App, channel string) {
	k := app.config().ID + "\x00" + channel
	now := time.Now().UnixNano()
	if v, ok := w.cacheMisses.Load(k); ok && now-v.(int64) < int64(time.Second) {
		return
	}
	w.cacheMisses.Store(k, now)
	w.emit(app, webhookEvent{Name: "cache_miss", Channel: channel})
}

// expireCacheMisses forgets old cache_miss times; the janitor calls it.
func (w *webhooks) expireCacheMisses(now time.Time) {
	w.cacheMisses.Range(func(k, v any) bool {
		if now.UnixNano()-v.(int64) > int64(time.Minute) {
			w.cacheMisses.Delete(k)
		}
		return true
	})
}

// subscribed sends what a subscription changed for the app (§9): occupied, then member_added.
// It runs before the socket is told it is subscribed, so a client that waits for
// subscription_succeeded before its next step (another subscribe, on this node or another)
// has its webhooks queued first, in that order; cache_miss follows the subscription.
func (w *webhooks) subscribed(app *App, name string, typ channelType, r subscribeResult, userID string) {
	if ev := (webhookEvent{Name: "channel_occupied", Channel: name}); r.occupied && w.up(context.Background(), app, registration(app, occupiedPrefix, name, "*"), ev) {
		w.emit(app, ev)
	}
	if ev := (webhookEvent{Name: "member_added", Channel: name, UserID: userID}); typ.kind == kindPresence && r.newMember && w.up(context.Background(), app, registration(app, membersPrefix, name, userID), ev) {
		w.emit(app, ev)
	}
}

// unsubscribed schedules what a leave changed for the app (§9): member_removed, then
// channel_vacated, each after the app's WebhookDelay unless a subscribe cancels it.
func (w *webhooks) unsubscribed(app *App, name, userID string, r unsubscribeResult) {
	if r.lastMember {
		w.down(app, registration(app, membersPrefix, name, userID),
			webhookEvent{Name: "member_removed", Channel: name, UserID: userID})
	}
	if r.vacated {
		w.down(app, registration(app, occupiedPrefix, name, "*"),
			webhookEvent{Name: "channel_vacated", Channel: name})
	}
}
