//go:build !linux

package tls

import (
	"net"
	"time"
)

// ReusePort is false outside Linux: other systems either lack SO_REUSEPORT (Windows) or give it
// different semantics (on macOS and FreeBSD the newest socket takes the connections rather than
// the kernel spreading them), so the zero-downtime binary upgrade is Linux-only.
const ReusePort = false

// listenConfig has Go set the same keepalive as on Linux (15 s idle, 15 s interval, 9 probes) on
// each accepted connection.
func listenConfig() net.ListenConfig {
	return net.ListenConfig{KeepAliveConfig: net.KeepAliveConfig{
		Enable: true, Idle: keepAliveSeconds * time.Second, Interval: keepAliveSeconds * time.Second, Count: 9,
	}}
}
