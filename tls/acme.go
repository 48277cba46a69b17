package tls

import (
	"context"
	cryptotls "crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// hostPolicy wraps autocert's policy: the :80 challenge request carries Host with a port, which
// HostWhitelist would refuse; and refusals are logged once per name per hour.
func (m *Manager) hostPolicy(p autocert.HostPolicy) autocert.HostPolicy {
	return func(ctx context.Context, host string) error {
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if err := p(ctx, host); err != nil {
			m.logRefused(host)
			return errRefused{name: host}
		}
		return nil
	}
}

// errRefused is the handshake error for a name that is not configured: already logged (rate
// limited) by logRefused, so the listener does not log it again.
type errRefused struct{ name string }

func (e errRefused) Error() string {
	if e.name == "" {
		return "tls: no SNI: connect with one of the configured names"
	}
	return "tls: " + strconv.Quote(e.name) + " is not a configured --domain"
}

func (m *Manager) logRefused(name string) {
	if m.firstIn("refused:"+name, time.Hour) {
		m.log.Info().Str("sni", name).Str("reason", "host_not_configured").Msg("TLS handshake refused: name is not a configured --domain (no certificate requested)")
	}
}

// firstIn reports whether key was not seen during the last interval, and records it: the rate
// limit for log lines that every handshake could otherwise repeat.
func (m *Manager) firstIn(key string, interval time.Duration) bool {
	m.logMu.Lock()
	defer m.logMu.Unlock()
	if last, ok := m.logLast[key]; ok && time.Since(last) < interval {
		return false
	}
	if len(m.logLast) > 10000 {
		clear(m.logLast) // scanners send endless names: bound the memory
	}
	m.logLast[key] = time.Now()
	return true
}

// issueFailed reports a configured name whose certificate could not be obtained (CA unreachable,
// validation failed, rate limit): every handshake for it fails, so it is an error, logged once a
// minute per name. A TLS-ALPN-01 probe for a token that no longer exists is routine and not logged.
func (m *Manager) issueFailed(hello *cryptotls.ClientHelloInfo, err error) {
	var refused errRefused
	if errors.As(err, &refused) || slices.Contains(hello.SupportedProtos, acme.ALPNProto) {
		return
	}
	if m.firstIn("issue:"+hello.ServerName, time.Minute) {
		m.log.Error().Err(err).Str("sni", hello.ServerName).Str("directory", m.cfg.directoryURL()).
			Msg("no certificate for a configured name: handshakes for it fail until the CA issues one (is this server reachable on :443 or :80 from the internet under that name?)")
	}
}

// noteServed logs each certificate autocert obtains or renews the first time it is served, with
// its expiry: the log is where an operator sees issuance happen. TLS-ALPN-01 challenge
// certificates (RFC 8737 §3) are not served certificates and are skipped.
func (m *Manager) noteServed(name string, cert *cryptotls.Certificate) {
	leaf := cert.Leaf
	if leaf == nil || isACMEChallengeCert(leaf) {
		return
	}
	if prev, ok := m.served.Load(name); ok && prev.(*x509.Certificate) == leaf {
		return
	}
	if prev, loaded := m.served.Swap(name, leaf); loaded && prev.(*x509.Certificate).Equal(leaf) {
		return
	}
	m.logExpiry(&loadedCert{cert: cert, expires: leaf.NotAfter, names: leaf.DNSNames})
}

// isACMEChallengeCert is true for the self-signed certificate answering a TLS-ALPN-01 challenge:
// it carries the critical acmeIdentifier extension (RFC 8737 §3, OID 1.3.6.1.5.5.7.1.31).
func isACMEChallengeCert(c *x509.Certificate) bool {
	for _, e := range c.Extensions {
		if e.Id.Equal(acmeIdentifierOID) {
			return true
		}
	}
	return false
}

var acmeIdentifierOID = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 31}

// httpClientTrusting is an HTTP client for an ACME directory signed by a private CA.
func httpClientTrusting(caFile string) (*http.Client, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("--acme-ca-root: %w", err)
	}
	pool, _ := x509.SystemCertPool()
	if pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--acme-ca-root %s: no PEM certificate in it", caFile)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &cryptotls.Config{RootCAs: pool, MinVersion: cryptotls.VersionTLS12}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}, nil
}

// leafFromCachePEM reads the leaf from autocert's cache entry (key PEM, then the chain's PEMs).
func leafFromCachePEM(data []byte) (*x509.Certificate, bool) {
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, false
		}
		if strings.Contains(block.Type, "CERTIFICATE") {
			c, err := x509.ParseCertificate(block.Bytes)
			return c, err == nil
		}
	}
}
