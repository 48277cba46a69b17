package pusher

import (
	"context"
	"strconv"
	"sync"
	"time"
)

// In a cluster, pusher_internal:subscription_count carries the channel's subscriptions on every
// node, the number the API answers (§5.8). A change on a node schedules a recount for the
// channel: the node asks the others for their share, sends the total to its own subscribers and
// tells the other nodes to send the same number to theirs. Recounts are debounced as Pusher
// debounces the event: changes within subCountWindow make one recount, and above 100
// subscribers a channel gets one at most every subCountBusyEvery while there is churn.
const (
	subCountWindow    = 50 * time.Millisecond
	subCountBusy      = 100
	subCountBusyEvery = 5 * time.Second
)

// subCounts holds the channels with a recount scheduled, and the busy channels' last send.
type subCounts struct {
	mu sync.Mutex
	m  map[string]*subCount // app id + "\x00" + channel
}

type subCount struct {
	scheduled bool
	sentAt    time.Time
	last      int
}

// subscriptionCountChanged sends pusher_internal:subscription_count after a subscribe or an
// unsubscribe left n subscribers on this node (§5.8). Alone, n is the count, sent at once, and a
// channel vacated here has nobody left to tell. In a cluster the count is every node's: even a
// channel vacated here may have subscribers elsewhere, and they get a debounced recount.
func (c *cluster) subscriptionCountChanged(app *App, ch *Channel, n int, vacated bool) {
	switch {
	case !c.alone:
		c.subscriptionCount(app, ch.name)
	case !vacated:
		ch.broadcast(subscriptionCountFrame(ch.name, n), nil)
	}
}

// subscriptionCount schedules a recount of the channel's subscriptions cluster-wide.
func (c *cluster) subscriptionCount(app *App, channel string) {
	k := app.config().ID + "\x00" + channel
	c.subCounts.mu.Lock()
	defer c.subCounts.mu.Unlock()
	if c.subCounts.m == nil {
		c.subCounts.m = map[string]*subCount{}
	}
	sc := c.subCounts.m[k]
	if sc == nil {
		sc = &subCount{}
		c.subCounts.m[k] = sc
	}
	if sc.scheduled {
		return // the recount already scheduled will see this change
	}
	sc.scheduled = true
	delay := subCountWindow
	if sc.last > subCountBusy {
		delay = max(delay, time.Until(sc.sentAt.Add(subCountBusyEvery)))
	}
	time.AfterFunc(delay, func() { c.recountSubscriptions(app, channel, k) })
}

// recountPending reports a recount scheduled on this node for the channel.
func (c *cluster) recountPending(app *App, channel string) bool {
	c.subCounts.mu.Lock()
	defer c.subCounts.mu.Unlock()
	sc := c.subCounts.m[app.config().ID+"\x00"+channel]
	return sc != nil && sc.scheduled
}

func (c *cluster) recountSubscriptions(app *App, channel, k string) {
	select {
	case <-c.stop:
		return
	default:
	}
	// Cleared before counting: a change from here on schedules another recount, so the last
	// number sent is never older than the last change.
	c.subCounts.mu.Lock()
	c.subCounts.m[k].scheduled = false
	c.subCounts.mu.Unlock()

	n := 0
	ch := app.hub.lookup(channel)
	if ch != nil {
		n, _ = ch.counts()
	}
	answers, _ := c.ask(context.Background(), question{Q: askChannel, App: app.config().ID, Channel: channel})
	for _, a := range answers {
		n += a.Subs
	}
	if ch != nil {
		ch.broadcast(subscriptionCountFrame(channel, n), nil)
	}
	c.broadcast(busMsg{T: busSubcount, App: app.config().ID, Channels: []string{channel}, Data: strconv.Itoa(n)})

	c.subCounts.mu.Lock()
	if sc := c.subCounts.m[k]; sc != nil && !sc.scheduled {
		if n > subCountBusy {
			sc.sentAt, sc.last = time.Now(), n
		} else {
			delete(c.subCounts.m, k) // only busy channels need their last send remembered
		}
	}
	c.subCounts.mu.Unlock()
}

// deliverSubscriptionCount sends another node's recount to this node's subscribers, unless a
// recount is scheduled here: then a subscription changed on this node after the other node
// counted (its number can be in flight while a client subscribes here), and this node's own
// recount, which asks every node again, sends the fresher number. Without this, a client that
// subscribed just then was told the count from before it joined.
func (s *Server) deliverSubscriptionCount(app *App, channel, count string) {
	n, err := strconv.Atoi(count)
	if err != nil || n < 0 || !app.config().SubscriptionCount || s.cluster.recountPending(app, channel) {
		return
	}
	if ch := app.hub.lookup(channel); ch != nil {
		ch.broadcast(subscriptionCountFrame(channel, n), nil)
	}
}

func subscriptionCountFrame(channel string, n int) []byte {
	return eventFrame("pusher_internal:subscription_count", channel, `{"subscription_count":`+strconv.Itoa(n)+`}`, "")
}
