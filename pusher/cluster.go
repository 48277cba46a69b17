package pusher

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// ErrNotHeld is Broker.Leave's answer for a member whose entry the broker no longer held for this
// node: the rebuild after an outage dropped it and had not registered it again (or was cut
// short). That rebuild, not the leave, tells the other nodes (Server.Reconnected).
var ErrNotHeld = errors.New("pusher: the broker held no entry of this node for the member")

// Broker joins this node to the other nodes serving the same apps (docs/architecture.md "Scaling out").
// pusher/redis implements it over Redis; a Server without one is a single node and keeps
// everything in memory. The broker is transport and shared state only: what a message means
// stays in this package, so every node speaks the same protocol whatever carries it.
type Broker interface {
	// Start begins delivering other nodes' messages to n; it returns once the broker is set up,
	// even when Redis is not reachable yet (it keeps trying, Healthy says how it stands).
	Start(n Node) error
	// Close leaves the cluster: this node's presence entries are removed and it stops receiving.
	Close() error
	// Broadcast sends msg to every other node, in order, once. It never blocks: when the
	// broker cannot keep up or is down, the message is dropped with a log line and a count.
	Broadcast(msg []byte)
	// Ask sends a question to every other live node and returns their answers; when some do
	// not answer before ctx ends, it returns what arrived with an error saying how many were missing.
	Ask(ctx context.Context, question []byte) ([][]byte, error)
	// Join records that this node holds user in a presence channel; first is true when no
	// other node held that user there (the user joined cluster-wide, §5.4).
	Join(ctx context.Context, m Membership) (first bool, err error)
	// Leave undoes Join; last is true when no node holds the user there any more. It returns
	// ErrNotHeld when the broker held no entry of this node for m.
	Leave(ctx context.Context, m Membership) (last bool, err error)
	// Members lists a presence channel's members on every node.
	Members(ctx context.Context, app, channel string) ([]Member, error)
	// Present reports, for each user, whether any node holds it in the channel.
	Present(ctx context.Context, app, channel string, users []string) ([]bool, error)
	// SetCache remembers a cache channel's last event for nodes that did not see it (§5.6).
	SetCache(ctx context.Context, app, channel string, event []byte, ttl time.Duration) error
	// Cache returns a cache channel's last event as stored by SetCache.
	Cache(ctx context.Context, app, channel string) (event []byte, ttl time.Duration, ok bool, err error)
	// RemoteConnections is the app's socket count on the other nodes as last reported, for the
	// cluster-wide max_connections; it never blocks and may be a few seconds old.
	RemoteConnections(app string) int64
	// Healthy is nil while the broker is connected.
	Healthy() error
}

// Node is what a Broker calls back into; *Server implements it.
type Node interface {
	// NodeID names this node in the cluster; unique per process.
	NodeID() string
	// Deliver handles a message another node Broadcast.
	Deliver(msg []byte)
	// Answer answers another node's Ask.
	Answer(question []byte) []byte
	// Reconnected is called after the broker (re)connected: the node re-registers its presence
	// members. lost are members the broker held for this node and has just dropped because they
	// were on no other node; those the node no longer holds left during the outage. reaped are
	// the members the other nodes announced gone when they declared this node dead: only those
	// are announced again (a node declared dead before it had re-registered anything, say just
	// after a Redis restart, was announced gone for nothing). It runs on its own goroutine and
	// may block on the broker; an error means it stopped part-way and is to be called again.
	Reconnected(lost, reaped []Membership) error
	// MembersGone is called on one surviving node with the members of a dead node who were on
	// no other node: that node announces them gone cluster-wide.
	MembersGone(ms []Membership)
	// Connections are this node's open sockets per app id, reported to the other nodes.
	Connections() map[string]int64
	// AdoptWebhooks is called on one surviving node with the webhook events a stopped or dead
	// node journaled (WebhookJournal) and did not deliver, oldest first: this node delivers them.
	AdoptWebhooks(entries [][]byte)
}

// Membership is one user in one presence channel on one node.
type Membership struct {
	App, Channel, User string
	Info               []byte // user_info JSON
}

// Member is one presence member cluster-wide.
type Member struct {
	ID   string
	Info []byte // user_info JSON
}

// clusterTimeout bounds the broker calls made on a socket's or an API request's behalf. When
// the broker is slower than this, the node answers from what it knows locally.
const clusterTimeout = 2 * time.Second

// bounded is the context of one broker call: the caller's (an API request's, Shutdown's; a
// socket's message or a timer has none and passes context.Background()), ended after
// clusterTimeout at most.
func bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, clusterTimeout)
}

// cluster is this node's side of the cluster: the broker, every call made to it, and what a
// failed call degrades to (this node's own view, logged once per interval). Server holds one.
type cluster struct {
	broker Broker // memoryBroker for a single node
	// alone: the broker is memoryBroker, so no other node would read a bus message or a cached
	// event; they are not encoded at all, and a publish costs no more than its local delivery.
	alone     bool
	log       zerolog.Logger
	rlog      *rateLog
	stop      <-chan struct{} // the server's: a recount scheduled after it closed does nothing
	errAt     atomic.Int64    // when a broker failure was last logged (Unix ns)
	subCounts subCounts
}
