package pusher

import (
	"context"
	"time"
)

// memoryBroker is the Broker of a node that serves alone, so the hub has one code path whether
// or not there is a cluster. It answers as a cluster of one: no other node hears a Broadcast or
// answers an Ask, every Join is the first and every Leave the last. The presence, occupancy and
// cache state it would otherwise hold is this node's own (the Hub's channels and members, the
// App's signed-in users), which the callers already merge with what a broker returns; a copy
// here would cost memory and could only disagree with it.
type memoryBroker struct{}

// Start implements Broker: there is nothing to connect to.
func (memoryBroker) Start(Node) error { return nil }

// Close implements Broker.
func (memoryBroker) Close() error { return nil }

// Broadcast implements Broker: no other node to tell.
func (memoryBroker) Broadcast([]byte) {}

// Ask implements Broker: no other node answers.
func (memoryBroker) Ask(context.Context, []byte) ([][]byte, error) { return nil, nil }

// Join implements Broker: no other node held the user, so this join is the first.
func (memoryBroker) Join(context.Context, Membership) (bool, error) { return true, nil }

// Leave implements Broker: no other node holds the user, so this leave is the last.
func (memoryBroker) Leave(context.Context, Membership) (bool, error) { return true, nil }

// Members implements Broker: no other node has members; the caller adds this node's.
func (memoryBroker) Members(context.Context, string, string) ([]Member, error) { return nil, nil }

// Present implements Broker: no other node holds anyone; the caller adds this node's users.
func (memoryBroker) Present(_ context.Context, _, _ string, users []string) ([]bool, error) {
	return make([]bool, len(users)), nil
}

// SetCache implements Broker: the Hub keeps this node's cache channels.
func (memoryBroker) SetCache(context.Context, string, string, []byte, time.Duration) error {
	return nil
}

// Cache implements Broker: no other node published anything this node missed.
func (memoryBroker) Cache(context.Context, string, string) ([]byte, time.Duration, bool, error) {
	return nil, 0, false, nil
}

// RemoteConnections implements Broker: no other node has sockets.
func (memoryBroker) RemoteConnections(string) int64 { return 0 }

// Healthy implements Broker: a node alone is always connected to its cluster.
func (memoryBroker) Healthy() error { return nil }
