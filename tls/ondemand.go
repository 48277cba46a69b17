package tls

import (
	"context"
	cryptotls "crypto/tls"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// OnDemand lets names outside Config.Domains get ACME certificates at their first handshake
// (tenants' own domains, as Caddy's on_demand_tls), when Allowed says so. Every order is bounded:
// a token bucket for all names, one order at a time per name, and a doubling back-off per name
// after a failed one, so a storm of unknown SNI names can neither flood the CA nor run into its
// rate limits.
type OnDemand struct {
	// Allowed reports whether name may have a certificate. cmd/frontdoor asks the site's app and
	// caches the answer; it is called before each order and when a certificate made by an
	// earlier process is found in the cache (a tenant that left is not served it again).
	Allowed func(ctx context.Context, name string) bool
	// OrdersPerMinute and Burst bound new orders across all names (defaults 10 and 20).
	OrdersPerMinute float64
	Burst           int
	// MaxBackoff caps the wait after repeated failed orders for one name (default 1h; the first
	// wait is one minute, as autocert's own retry).
	MaxBackoff time.Duration
}

// OnDemandStats counts what on-demand issuance did, for metrics and tests.
type OnDemandStats struct {
	Orders      uint64 // orders started (each reaches the CA)
	Issued      uint64 // orders that ended with a certificate
	Failed      uint64 // orders that failed (the name then backs off)
	Refused     uint64 // handshakes for names Allowed refused
	RateLimited uint64 // handshakes refused because the order bucket was empty
	BackedOff   uint64 // handshakes refused while their name backs off after a failure
}

// maxOnDemandNames bounds the per-name state (names being ordered, backing off or issued).
const maxOnDemandNames = 10000

type onDemandName struct {
	ordering     bool
	issued       bool
	failures     int
	backoffUntil time.Time
}

type onDemand struct {
	cfg OnDemand
	mu  sync.Mutex
	// tokens and last are the order bucket.
	tokens float64
	last   time.Time
	names  map[string]*onDemandName

	orders, issued, failed, refused, rateLimited, backedOff atomic.Uint64
}

func newOnDemand(cfg OnDemand) *onDemand {
	if cfg.OrdersPerMinute <= 0 {
		cfg.OrdersPerMinute = 10
	}
	if cfg.Burst <= 0 {
		cfg.Burst = 20
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = time.Hour
	}
	return &onDemand{cfg: cfg, tokens: float64(cfg.Burst), last: time.Now(), names: map[string]*onDemandName{}}
}

// OnDemandStats reports the on-demand counters; zero without Config.OnDemand.
func (m *Manager) OnDemandStats() OnDemandStats {
	od := m.od
	if od == nil {
		return OnDemandStats{}
	}
	return OnDemandStats{Orders: od.orders.Load(), Issued: od.issued.Load(), Failed: od.failed.Load(),
		Refused: od.refused.Load(), RateLimited: od.rateLimited.Load(), BackedOff: od.backedOff.Load()}
}

func onDemandKey(name string) string { return strings.ToLower(strings.TrimSuffix(name, ".")) }

// policy lets autocert (its own check before each certificate lookup, and the http-01 challenge
// handler) through for a name this gate admitted; configured names go to the allow-list.
func (od *onDemand) policy(configured autocert.HostPolicy) autocert.HostPolicy {
	return func(ctx context.Context, host string) error {
		if configured(ctx, host) == nil {
			return nil
		}
		od.mu.Lock()
		defer od.mu.Unlock()
		if n := od.names[onDemandKey(host)]; n != nil && (n.ordering || n.issued) {
			return nil
		}
		return errRefused{name: host}
	}
}

// acmeCertificate is autocert's GetCertificate, behind the on-demand gate for names that are not
// configured. TLS-ALPN-01 challenge handshakes pass straight through: autocert answers them only
// with a token it holds for an order in flight.
func (m *Manager) acmeCertificate(hello *cryptotls.ClientHelloInfo) (*cryptotls.Certificate, error) {
	name := onDemandKey(hello.ServerName)
	if m.od == nil || slices.Contains(m.cfg.Domains, name) || slices.Contains(hello.SupportedProtos, acme.ALPNProto) {
		return m.acme.GetCertificate(hello)
	}
	ordering, err := m.od.admit(m, name)
	if err != nil {
		return nil, err
	}
	cert, err := m.acme.GetCertificate(hello)
	if ordering {
		m.od.done(name, err)
	}
	return cert, err
}

// admit decides whether a handshake for an unconfigured name may reach autocert. It reports
// ordering when this handshake started an order (and must report its end with done).
func (od *onDemand) admit(m *Manager, name string) (ordering bool, err error) {
	now := time.Now()
	od.mu.Lock()
	n := od.names[name]
	switch {
	case n != nil && (n.issued || n.ordering):
		// Issued in this process, or an order in flight: autocert serves or waits for it.
		od.mu.Unlock()
		return false, nil
	case n != nil && now.Before(n.backoffUntil):
		od.mu.Unlock()
		od.backedOff.Add(1)
		return false, m.refuseOnDemand(name, "backoff")
	}
	od.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if !od.cfg.Allowed(ctx, name) {
		od.refused.Add(1)
		return false, m.refuseOnDemand(name, "not_allowed")
	}
	// A certificate an earlier process obtained is served without an order.
	if _, err := m.acme.Cache.Get(ctx, name); err == nil {
		od.mark(name, func(n *onDemandName) { n.issued = true })
		return false, nil
	}

	od.mu.Lock()
	defer od.mu.Unlock()
	if n = od.names[name]; n != nil && (n.issued || n.ordering) {
		return false, nil // another handshake got here first
	}
	if n == nil && len(od.names) >= maxOnDemandNames {
		od.rateLimited.Add(1)
		return false, m.refuseOnDemand(name, "too_many_names")
	}
	elapsed := now.Sub(od.last).Minutes()
	od.last = now
	od.tokens = min(float64(od.cfg.Burst), od.tokens+elapsed*od.cfg.OrdersPerMinute)
	if od.tokens < 1 {
		od.rateLimited.Add(1)
		return false, m.refuseOnDemand(name, "order_rate")
	}
	od.tokens--
	if n == nil {
		n = &onDemandName{}
		od.names[name] = n
	}
	n.ordering = true
	od.orders.Add(1)
	m.log.Info().Str("sni", name).Msg("on-demand certificate: the app allowed this name; ordering")
	return true, nil
}

func (od *onDemand) mark(name string, f func(*onDemandName)) {
	od.mu.Lock()
	defer od.mu.Unlock()
	n := od.names[name]
	if n == nil {
		if len(od.names) >= maxOnDemandNames {
			return
		}
		n = &onDemandName{}
		od.names[name] = n
	}
	f(n)
}

// done records how an order ended: a failure backs the name off, one minute doubling to MaxBackoff.
func (od *onDemand) done(name string, err error) {
	od.mark(name, func(n *onDemandName) {
		n.ordering = false
		if err == nil {
			n.issued, n.failures = true, 0
			od.issued.Add(1)
			return
		}
		od.failed.Add(1)
		n.failures++
		wait := time.Minute << min(n.failures-1, 10)
		n.backoffUntil = time.Now().Add(min(wait, od.cfg.MaxBackoff))
	})
}

// refuseOnDemand logs (once per name and reason per hour) and refuses a handshake.
func (m *Manager) refuseOnDemand(name, reason string) error {
	if m.firstIn("ondemand:"+reason+":"+name, time.Hour) {
		m.log.Info().Str("sni", name).Str("reason", reason).Msg("TLS handshake refused: no on-demand certificate for this name (none ordered)")
	}
	return errRefused{name: name}
}

// errOnDemandConfig is returned by Validate for on-demand settings outside auto mode.
var errOnDemandConfig = errors.New("on-demand certificates need --tls auto")

func (od *OnDemand) validate() error {
	if od.Allowed == nil {
		return fmt.Errorf("on_demand: no ask function")
	}
	if od.OrdersPerMinute < 0 || od.Burst < 0 || od.MaxBackoff < 0 {
		return fmt.Errorf("on_demand: orders_per_minute, burst and max_backoff must be ≥ 0")
	}
	return nil
}
