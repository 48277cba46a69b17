package tls

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	cryptotls "crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// Manager hands certificates to the TLS listener according to the configured mode.
type Manager struct {
	cfg Config
	log zerolog.Logger

	acme *autocert.Manager            // auto mode
	cert atomic.Pointer[loadedCert]   // files and self-signed modes
	mod  atomic.Pointer[fileVersions] // files mode: what was loaded, to notice changes

	refusedMu  sync.Mutex
	refusedLog map[string]time.Time // SNI → last time a refusal was logged

	ocsp   *stapler
	served sync.Map // auto mode: name → *x509.Certificate last served, to log each new certificate once
}

type loadedCert struct {
	cert    *cryptotls.Certificate
	expires time.Time
	names   []string
}

type fileVersions struct{ cert, key time.Time }

// New prepares the certificates for cfg (which must have been validated).
func New(cfg Config, log zerolog.Logger) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Manager{cfg: cfg, log: log, refusedLog: map[string]time.Time{}, ocsp: newStapler(log)}
	switch cfg.Mode {
	case "auto":
		if err := os.MkdirAll(cfg.CacheDir, 0o700); err != nil {
			return nil, fmt.Errorf("--cert-cache: %w", err)
		}
		if err := os.Chmod(cfg.CacheDir, 0o700); err != nil {
			return nil, fmt.Errorf("--cert-cache: %w", err)
		}
		client := &acme.Client{DirectoryURL: cfg.directoryURL()}
		if cfg.ACMECARoot != "" {
			hc, err := httpClientTrusting(cfg.ACMECARoot)
			if err != nil {
				return nil, err
			}
			client.HTTPClient = hc
		}
		m.acme = &autocert.Manager{
			Prompt:     autocert.AcceptTOS,
			Email:      cfg.Email,
			Cache:      autocert.DirCache(cfg.CacheDir),
			HostPolicy: m.hostPolicy(autocert.HostWhitelist(cfg.Domains...)),
			Client:     client,
		}
		log.Info().Strs("domains", cfg.Domains).Str("directory", client.DirectoryURL).Str("cache", cfg.CacheDir).
			Msg("automatic certificates: the first TLS handshake for each name obtains its certificate")
	case "files":
		if err := m.Reload(); err != nil {
			return nil, err
		}
	case "self-signed":
		lc, err := selfSigned(cfg.Domains)
		if err != nil {
			return nil, err
		}
		m.cert.Store(lc)
		log.Warn().Strs("names", lc.names).Msg("self-signed certificate: for local HTTPS testing only; browsers will warn")
	}
	return m, nil
}

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
	m.refusedMu.Lock()
	defer m.refusedMu.Unlock()
	if last, ok := m.refusedLog[key]; ok && time.Since(last) < interval {
		return false
	}
	if len(m.refusedLog) > 10000 {
		clear(m.refusedLog) // scanners send endless names: bound the memory
	}
	m.refusedLog[key] = time.Now()
	return true
}

// TLSConfig is the listener's configuration. Built here rather than taken from autocert's
// TLSConfig, which advertises h2: fasthttp speaks HTTP/1.1 only, so ALPN offers exactly
// http/1.1 plus acme-tls/1 for TLS-ALPN-01 challenges.
func (m *Manager) TLSConfig() *cryptotls.Config {
	return &cryptotls.Config{
		MinVersion:     cryptotls.VersionTLS12,
		NextProtos:     []string{"http/1.1", acme.ALPNProto},
		GetCertificate: m.getCertificate,
	}
}

func (m *Manager) getCertificate(hello *cryptotls.ClientHelloInfo) (*cryptotls.Certificate, error) {
	if m.acme != nil {
		if hello.ServerName == "" {
			m.logRefused("(no SNI)")
			return nil, errRefused{}
		}
		cert, err := m.acme.GetCertificate(hello)
		if err != nil {
			m.issueFailed(hello, err)
			return nil, err
		}
		m.noteServed(hello.ServerName, cert)
		return m.ocsp.staple(cert), nil
	}
	lc := m.cert.Load()
	if lc == nil {
		return nil, errors.New("tls: no certificate loaded")
	}
	return m.ocsp.staple(lc.cert), nil
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

// Reload re-reads the certificate files (SIGHUP and file changes). A failed reload keeps the
// certificate in use and says why; connections are never dropped, new handshakes use the new one.
func (m *Manager) Reload() error {
	if m.cfg.Mode != "files" {
		return nil
	}
	certInfo, err1 := os.Stat(m.cfg.CertFile)
	keyInfo, err2 := os.Stat(m.cfg.KeyFile)
	pair, err := cryptotls.LoadX509KeyPair(m.cfg.CertFile, m.cfg.KeyFile)
	if err = errors.Join(err1, err2, err); err != nil {
		return fmt.Errorf("--tls-cert/--tls-key: %w", err)
	}
	lc, err := describe(&pair)
	if err != nil {
		return fmt.Errorf("--tls-cert %s: %w", m.cfg.CertFile, err)
	}
	m.cert.Store(lc)
	m.mod.Store(&fileVersions{certInfo.ModTime(), keyInfo.ModTime()})
	m.logExpiry(lc)
	return nil
}

func describe(c *cryptotls.Certificate) (*loadedCert, error) {
	leaf := c.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, err
		}
		c.Leaf = leaf // OCSP stapling and expiry checks read it
	}
	names := leaf.DNSNames
	if len(names) == 0 {
		names = []string{leaf.Subject.CommonName}
	}
	return &loadedCert{cert: c, expires: leaf.NotAfter, names: names}, nil
}

func (m *Manager) logExpiry(lc *loadedCert) {
	left := time.Until(lc.expires)
	ev := m.log.Info()
	if left < 14*24*time.Hour {
		ev = m.log.Warn()
	}
	ev.Strs("names", lc.names).Time("expires", lc.expires).Int("days_left", int(left.Hours()/24)).Msg("certificate loaded")
}

// Run watches certificate files for changes and logs approaching expiry until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	nextExpiryCheck := time.Now().Add(time.Minute) // after the first issuance has had its chance
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if m.cfg.Mode == "files" && m.filesChanged() {
				if err := m.Reload(); err != nil {
					m.log.Error().Err(err).Msg("certificate files changed but could not be loaded; keeping the current certificate")
				}
			}
			if now.After(nextExpiryCheck) {
				m.checkExpiry(now)
				nextExpiryCheck = now.Add(time.Hour)
			}
		}
	}
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
		if m.cfg.Mode == "auto" {
			ev.Msg("certificate not renewed and expiring: automatic renewal keeps failing (see earlier errors; is the CA able to reach this server?)")
		} else {
			ev.Msg("certificate expiring: replace the files, then SIGHUP (or wait: changes are picked up)")
		}
	}
}

func (m *Manager) filesChanged() bool {
	v := m.mod.Load()
	ci, err1 := os.Stat(m.cfg.CertFile)
	ki, err2 := os.Stat(m.cfg.KeyFile)
	if v == nil || err1 != nil || err2 != nil {
		return false
	}
	return !ci.ModTime().Equal(v.cert) || !ki.ModTime().Equal(v.key)
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

// selfSigned makes an in-memory ECDSA certificate for local HTTPS.
func selfSigned(names []string) (*loadedCert, error) {
	if len(names) == 0 {
		names = []string{"localhost"}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	tpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: names[0], Organization: []string{"frontdoor self-signed"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tpl.IPAddresses = append(tpl.IPAddresses, ip)
		} else {
			tpl.DNSNames = append(tpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	leaf, _ := x509.ParseCertificate(der)
	c := &cryptotls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
	return &loadedCert{cert: c, expires: tpl.NotAfter, names: names}, nil
}

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
