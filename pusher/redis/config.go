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
	"net/url"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/frontdoorhq/frontdoor/pusher"
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
	// OutageQueue bounds the messages for other nodes kept while Redis is unreachable; they are
	// sent in order when it returns, so a short outage delays them instead of losing them. Past
	// the bound the oldest are dropped (counted). Default 10000.
	OutageQueue int
	// OutageMaxAge is how long a message may wait for Redis to return; older ones are dropped
	// (counted): an event minutes late is worse than none. Default 30 s.
	OutageMaxAge time.Duration
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
	if c.OutageQueue == 0 {
		c.OutageQueue = 10000
	}
	if c.OutageMaxAge == 0 {
		c.OutageMaxAge = 30 * time.Second
	}
	return c
}

// Validate names the bad key and value.
func (c Config) Validate() error {
	var errs []error
	if _, err := goredis.ParseURL(c.URL); err != nil {
		var ue *url.Error
		if errors.As(err, &ue) { // url.Parse quotes the URL, password included
			err = ue.Err
		}
		errs = append(errs, fmt.Errorf("redis: invalid value %q: want redis://[user:password@]host:port/db or rediss://…: %v", pusher.RedactURL(c.URL), err))
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
	if c.OutageQueue < 0 {
		errs = append(errs, fmt.Errorf("redis.outage_queue (--redis-outage-queue): invalid value %d: must be ≥ 0", c.OutageQueue))
	}
	if c.OutageMaxAge < 0 {
		errs = append(errs, fmt.Errorf("redis.outage_max_age (--redis-outage-max-age): invalid value %s: must be ≥ 0", c.OutageMaxAge))
	}
	return errors.Join(errs...)
}
