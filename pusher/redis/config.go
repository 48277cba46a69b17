// Package redis joins frontdoor nodes into one Pusher server over Redis (docs/architecture.md "Scaling out"):
// publishes travel as one Redis pub/sub message each, presence members and cache channels live in
// Redis keys owned by node, and each node heartbeats so a dead node's members are removed.
//
// It needs one standalone Redis (or a managed primary with replicas): its scripts touch keys of
// several channels at once, which Redis Cluster does not allow.
package redis

import (
	"errors"
	"fmt"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Config says which Redis to use and how often to prove this node is alive.
type Config struct {
	// URL is redis://[user:password@]host:port/db or rediss:// for TLS.
	URL string
	// Prefix starts every key and pub/sub channel, so several deployments can share one Redis.
	// Default "frontdoor".
	Prefix string
	// Heartbeat is how often a node reports itself alive; a node silent for three heartbeats is
	// dead and its presence members are removed. Default 2 s.
	Heartbeat time.Duration
	// QueueSize bounds messages waiting to be published; beyond it they are dropped (counted and
	// logged) rather than slowing a socket. Default 16384.
	QueueSize int
}

// DefaultPrefix is the key prefix when none is set.
const DefaultPrefix = "frontdoor"

func (c Config) withDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = 2 * time.Second
	}
	if c.QueueSize == 0 {
		c.QueueSize = 16384
	}
	return c
}

// Validate names the bad key and value.
func (c Config) Validate() error {
	var errs []error
	if _, err := goredis.ParseURL(c.URL); err != nil {
		errs = append(errs, fmt.Errorf("redis: invalid value %q: want redis://[user:password@]host:port/db or rediss://…: %v", redact(c.URL), err))
	}
	if strings.ContainsAny(c.Prefix, " \n\r\t") {
		errs = append(errs, fmt.Errorf("redis_prefix: invalid value %q: no spaces", c.Prefix))
	}
	if c.Heartbeat < 0 || c.Heartbeat > 0 && c.Heartbeat < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("redis_heartbeat: invalid value %s: at least 100ms", c.Heartbeat))
	}
	if c.QueueSize < 0 {
		errs = append(errs, fmt.Errorf("redis_queue: invalid value %d: must be ≥ 0", c.QueueSize))
	}
	return errors.Join(errs...)
}

// redact hides the password in a Redis URL for error messages and logs.
func redact(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return u
	}
	creds, host, ok := strings.Cut(rest, "@")
	if !ok {
		return u
	}
	user, _, hasPass := strings.Cut(creds, ":")
	if !hasPass {
		return u
	}
	return scheme + "://" + user + ":xxxxx@" + host
}
