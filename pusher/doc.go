// Package pusher implements the Pusher Channels protocol v7 as Laravel's clients and broadcaster
// use it: WebSockets at {prefix}/app/{key} and the signed HTTP API at {prefix}/apps/{id}/...
// (docs/protocol.md is the reference; comments cite its sections as §n, and RFC 6455's as
// "RFC 6455 §n").
//
// Shape: a Server holds apps; each app has a Hub whose channels are sharded by name hash, each
// shard with its own lock, so publishes on different channels do not contend. A Socket is one
// connection; its bytes come and go through package ws, which owns the epoll read driver and
// the non-blocking writer.
//
// Hot path: a publish encodes the event and frames it once, then hands the same []byte to every
// subscriber's queue (docs/architecture.md "Encode once, write many"). Nothing is marshalled per recipient.
//
// Lock order: shard.mu → Channel.mu → Socket.mu → App.usersMu. A lock is never taken while a
// later one in that list is held, and no lock is held while calling into package ws's Close
// (Send is non-blocking and may be called under Channel.mu).
package pusher
