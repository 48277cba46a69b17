package tls

import (
	"context"
	"crypto/x509"
	"time"
)

// logExpiry records a certificate going into service: names and expiry, a warning when close.
func (m *Manager) logExpiry(lc *loadedCert) {
	left := time.Until(lc.expires)
	ev := m.log.Info()
	if left < 14*24*time.Hour {
		ev = m.log.Warn()
	}
	ev.Strs("names", lc.names).Time("expires", lc.expires).Int("days_left", int(left.Hours()/24)).Msg("certificate loaded")
}

// checkExpiry complains about every certificate with less than a sixth of its lifetime left.
// autocert renews a third of the lifetime before expiry (30 days for Let's Encrypt's 90) and
// retries silently, so by then renewal has been failing for half its window; certificate files
// are renewed by someone else, who has the same margin.
func (m *Manager) checkExpiry(now time.Time) {
	for name, leaf := range m.leaves() {
		life, left := leaf.NotAfter.Sub(leaf.NotBefore), leaf.NotAfter.Sub(now)
		if left > life/6 {
			continue
		}
		ev := m.log.Error().Str("name", name).Time("expires", leaf.NotAfter).Int("days_left", int(left.Hours()/24))
		if m.cfg.Mode == ModeAuto {
			ev.Msg("certificate not renewed and expiring: automatic renewal keeps failing (see earlier errors; is the CA able to reach this server?)")
		} else {
			ev.Msg("certificate expiring: replace the files, then SIGHUP (or wait: changes are picked up)")
		}
	}
}

// Expiries reports when each served certificate expires, for metrics and /readyz.
func (m *Manager) Expiries() map[string]time.Time {
	out := map[string]time.Time{}
	for name, leaf := range m.leaves() {
		out[name] = leaf.NotAfter
	}
	return out
}

// leaves are the certificates in use by name: the loaded one, and in auto mode what the cache
// holds (where autocert writes every issuance and renewal before serving it).
func (m *Manager) leaves() map[string]*x509.Certificate {
	out := map[string]*x509.Certificate{}
	if lc := m.cert.Load(); lc != nil && lc.cert.Leaf != nil {
		for _, n := range lc.names {
			out[n] = lc.cert.Leaf
		}
	}
	if m.acme != nil {
		for _, d := range m.cfg.Domains {
			data, err := m.acme.Cache.Get(context.Background(), d)
			if err != nil {
				continue
			}
			if leaf, ok := leafFromCachePEM(data); ok {
				out[d] = leaf
			}
		}
	}
	return out
}
