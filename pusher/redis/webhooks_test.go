package redis

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/frontdoorhq/frontdoor/pusher"
)

func journalLen(t *testing.T, n *node) int64 {
	t.Helper()
	l, err := n.broker.rdb.HLen(context.Background(), n.broker.journalKey(n.broker.id)).Result()
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestWebhooksOfADeadNodeDeliveredByAnother: a node dies while its webhook target is failing;
// the node that reaps it delivers what it left, before the channel_vacated its death causes.
func TestWebhooksOfADeadNodeDeliveredByAnother(t *testing.T) {
	r := startRedis(t)
	h := newHookReceiver(t)
	h.setFail(true)
	hook := func(a *pusher.AppConfig) {
		a.Webhooks = []pusher.WebhookConfig{{URL: h.srv.URL}}
		a.WebhookDelay = 200 * time.Millisecond
	}
	n1, n2 := startNode(t, r.url(), hook), startNode(t, r.url(), hook)
	a := n1.connect()
	a.subscribe("orders", "")
	eventually(t, 10*time.Second, "n1 tried and journaled channel_occupied", func() bool {
		return h.tries() > 0 && journalLen(t, n1) == 1
	})
	n1.crash()
	h.setFail(false)
	h.waitFor(t, "channel_occupied orders", "channel_vacated orders")
	eventually(t, 10*time.Second, "n2's journal emptied once delivered", func() bool { return journalLen(t, n2) == 0 })
}

// TestWebhooksLeftAtShutdownDeliveredByAnother: a node stopped cleanly whose target did not
// answer within the shutdown timeout leaves its events to the other nodes.
func TestWebhooksLeftAtShutdownDeliveredByAnother(t *testing.T) {
	r := startRedis(t)
	h := newHookReceiver(t)
	h.setFail(true)
	hook := func(a *pusher.AppConfig) {
		a.Webhooks = []pusher.WebhookConfig{{URL: h.srv.URL}}
		a.WebhookDelay = 200 * time.Millisecond
	}
	n1, _ := startNode(t, r.url(), hook), startNode(t, r.url(), hook)
	a := n1.connect()
	a.subscribe("orders", "")
	eventually(t, 10*time.Second, "n1 tried and journaled channel_occupied", func() bool {
		return h.tries() > 0 && journalLen(t, n1) == 1
	})
	go func() { // a client answers the server's close, as browsers do
		for {
			if _, _, err := a.c.ReadMessage(); err != nil {
				return
			}
		}
	}()
	n1.ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = n1.srv.Shutdown(ctx) // the socket leaves: channel_vacated is due, the target still fails
	n1.ln = nil
	h.setFail(false)
	h.waitFor(t, "channel_occupied orders", "channel_vacated orders")
}

// TestVacatedDuringBlipOnce: a channel vacated while the broker counts Redis as failing is not
// reported then (another node might still have it); the rebuild once Redis answers again
// reports it, once.
func TestVacatedDuringBlipOnce(t *testing.T) {
	r := startRedis(t)
	h := newHookReceiver(t)
	n1 := startNode(t, r.url(), func(a *pusher.AppConfig) {
		a.Webhooks = []pusher.WebhookConfig{{URL: h.srv.URL}}
		a.WebhookDelay = 200 * time.Millisecond
	})
	a := n1.connect()
	a.subscribe("orders", "")
	h.waitFor(t, "channel_occupied orders")
	n1.broker.setHealth(errors.New("a heartbeat timed out"))
	a.send(map[string]any{"event": "pusher:unsubscribe", "data": map[string]string{"channel": "orders"}})
	eventually(t, 10*time.Second, "the rebuild after the blip", func() bool { return n1.rebuilt() && len(h.events()) >= 2 })
	// A later webhook from the same node comes after anything the rebuild queued.
	a.subscribe("fence", "")
	h.waitFor(t, "channel_occupied orders", "channel_vacated orders", "channel_occupied fence")
}

// TestOccupiedDuringBlipOnce: a channel occupied while the broker counts Redis as failing is
// reported by the rebuild once Redis answers again, if no other node reported it meanwhile:
// once for the cluster either way.
func TestOccupiedDuringBlipOnce(t *testing.T) {
	h, n1, n2 := hookedNodes(t)

	// Only n1 has the channel: its rebuild reports it.
	a := n1.connect()
	n1.broker.setHealth(errors.New("a heartbeat timed out"))
	a.subscribe("orders", "")
	h.waitFor(t, "channel_occupied orders")
	eventually(t, 10*time.Second, "the rebuild after the blip", n1.rebuilt)

	// n2 registers the channel before n1's rebuild: n2 reports it, n1 does not.
	n1.broker.setHealth(errors.New("a heartbeat timed out"))
	a.subscribe("invoices", "")
	b := n2.connect()
	b.subscribe("invoices", "")
	h.waitFor(t, "channel_occupied orders", "channel_occupied invoices")
	eventually(t, 10*time.Second, "the rebuild after the second blip", n1.rebuilt)
	a.subscribe("fence", "") // after anything n1's rebuild queued
	h.waitFor(t, "channel_occupied orders", "channel_occupied invoices", "channel_occupied fence")
}
