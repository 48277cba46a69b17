package tls

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	cryptotls "crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
	"golang.org/x/crypto/acme"

	"github.com/frontdoorhq/frontdoor/tls/pebbletest"
)

// Generous limits: CI is a loaded 2-core box. They bound a hang, they do not measure speed.
const (
	issueTimeout = 90 * time.Second
	renewTimeout = 90 * time.Second
)

// site is the production wiring in miniature: a Manager in auto mode against Pebble, a fasthttp
// TLS server on the HTTPS listener and the :80 handler on the HTTP one, with counters on what
// Pebble's validation authority asked of each.
type site struct {
	name     string
	m        *Manager
	pebble   *pebbletest.Server
	https    string // 127.0.0.1:port
	http     string
	logs     *syncBuffer
	alpnHits atomic.Int32 // TLS handshakes offering only acme-tls/1 (RFC 8737 §3)
	httpHits atomic.Int32 // http-01 requests answered 200 (RFC 8555 §8.3)
}

type challenge int

const (
	tlsALPN01 challenge = iota // Pebble's http-01 port is closed
	http01                     // Pebble's tls-alpn-01 port is closed
)

// uniqueName is a fresh host name per test, so nothing Pebble remembers (authz reuse) helps it.
func uniqueName(t *testing.T) string {
	b := make([]byte, 4)
	rand.Read(b)
	base := strings.ToLower(regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "-"))
	return base + "-" + hex.EncodeToString(b) + ".frontdoor.test"
}

func newSite(t *testing.T, only challenge, o pebbletest.Options, domains ...string) *site {
	t.Helper()
	return newSiteWith(t, only, o, nil, domains...)
}

// newSiteWith is newSite with the Config changed by mutate (nil: none) before New.
func newSiteWith(t *testing.T, only challenge, o pebbletest.Options, mutate func(*Config), domains ...string) *site {
	t.Helper()
	lnTLS, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lnHTTP, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lnTLS.Close(); lnHTTP.Close() })
	port := func(ln net.Listener) int { return ln.Addr().(*net.TCPAddr).Port }
	o.HTTPPort, o.TLSPort = port(lnHTTP), port(lnTLS)
	switch only {
	case tlsALPN01:
		o.HTTPPort = pebbletest.ClosedPort(t)
	case http01:
		o.TLSPort = pebbletest.ClosedPort(t)
	}
	s := &site{pebble: pebbletest.Start(t, o), https: lnTLS.Addr().String(), http: lnHTTP.Addr().String(), logs: &syncBuffer{}}
	if len(domains) == 0 {
		domains = []string{uniqueName(t)}
	}
	s.name = domains[0]
	cfg := Config{
		Mode:          "auto",
		Domains:       domains,
		Email:         "ops@frontdoor.test",
		CacheDir:      filepath.Join(t.TempDir(), "certs"),
		ACMEDirectory: s.pebble.DirectoryURL,
		ACMECARoot:    s.pebble.ListenerCAFile,
		HTTPSAddr:     s.https,
		HTTPAddr:      s.http,
		HTTPRedirect:  true,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	s.m, err = New(cfg, zerolog.New(s.logs))
	if err != nil {
		t.Fatal(err)
	}

	tcfg := s.m.TLSConfig()
	get := tcfg.GetCertificate
	tcfg.GetCertificate = func(h *cryptotls.ClientHelloInfo) (*cryptotls.Certificate, error) {
		if slices.Equal(h.SupportedProtos, []string{acme.ALPNProto}) {
			s.alpnHits.Add(1)
		}
		return get(h)
	}
	app := &fasthttp.Server{Handler: s.m.WrapHSTS(func(ctx *fasthttp.RequestCtx) {
		fmt.Fprintf(ctx, "hello over tls=%v", ctx.IsTLS())
	})}
	h80 := s.m.HTTPHandler(nil)
	plain := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		h80(ctx)
		if strings.HasPrefix(string(ctx.Path()), acmePrefix) && ctx.Response.StatusCode() == fasthttp.StatusOK {
			s.httpHits.Add(1)
		}
	}}
	ln := s.m.NewListener(lnTLS)
	ln.(*listener).cfg = tcfg
	app.Logger = fasthttpLog{s.logs}
	plain.Logger = fasthttpLog{s.logs}
	go app.Serve(ln)
	go plain.Serve(lnHTTP)
	t.Cleanup(func() { app.Shutdown(); plain.Shutdown() })
	return s
}

// handshake connects as a browser would (SNI, verification against Pebble's root) and returns
// the verified state. The first handshake for a name waits for its issuance.
func (s *site) handshake(t *testing.T, name string) (cryptotls.ConnectionState, error) {
	t.Helper()
	d := &net.Dialer{Timeout: issueTimeout}
	c, err := cryptotls.DialWithDialer(d, "tcp", s.https, &cryptotls.Config{ServerName: name, RootCAs: s.pebble.Roots(), NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		return cryptotls.ConnectionState{}, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", name)
	var resp fasthttp.Response
	if err := resp.Read(bufio.NewReader(c)); err != nil {
		return cryptotls.ConnectionState{}, fmt.Errorf("request over TLS: %w", err)
	}
	if got := string(resp.Body()); got != "hello over tls=true" {
		return cryptotls.ConnectionState{}, fmt.Errorf("body %q", got)
	}
	return c.ConnectionState(), nil
}

// checkIssued asserts the chain a client saw: issued by Pebble for exactly this name, verified to
// Pebble's root through the intermediate autocert served, ALPN http/1.1.
func (s *site) checkIssued(t *testing.T, st cryptotls.ConnectionState) {
	t.Helper()
	s.checkIssuedFor(t, s.name, st)
}

func (s *site) checkIssuedFor(t *testing.T, name string, st cryptotls.ConnectionState) {
	t.Helper()
	leaf := st.PeerCertificates[0]
	if !slices.Equal(leaf.DNSNames, []string{name}) {
		t.Errorf("leaf names %v, want [%s]", leaf.DNSNames, name)
	}
	if len(st.VerifiedChains) == 0 || !st.VerifiedChains[0][len(st.VerifiedChains[0])-1].Equal(s.pebble.Root) {
		t.Errorf("chain not verified to Pebble's root: %d chains", len(st.VerifiedChains))
	}
	if len(st.PeerCertificates) < 2 || !st.PeerCertificates[1].Equal(s.pebble.Intermediate) {
		t.Errorf("served chain %d certificates; want leaf + Pebble's intermediate", len(st.PeerCertificates))
	}
	if st.NegotiatedProtocol != "http/1.1" {
		t.Errorf("ALPN %q, want http/1.1", st.NegotiatedProtocol)
	}
}

func TestPebbleTLSALPN01(t *testing.T) {
	t.Parallel()
	s := newSite(t, tlsALPN01, pebbletest.Options{})
	st, err := s.handshake(t, s.name)
	if err != nil {
		t.Fatalf("first handshake (issuance): %v\n%s\n%s", err, s.logs, s.pebble.Log())
	}
	s.checkIssued(t, st)
	if s.alpnHits.Load() == 0 || s.httpHits.Load() != 0 {
		t.Fatalf("validated by tls-alpn-01 %d times, http-01 %d times: want tls-alpn-01 alone", s.alpnHits.Load(), s.httpHits.Load())
	}
	// The cached certificate is served again without a new order.
	orders := s.pebble.Orders()
	st2, err := s.handshake(t, s.name)
	if err != nil {
		t.Fatal(err)
	}
	if !st2.PeerCertificates[0].Equal(st.PeerCertificates[0]) || s.pebble.Orders() != orders {
		t.Fatalf("second handshake: new certificate or new order (%d → %d)", orders, s.pebble.Orders())
	}
	// SNI is case-insensitive: the same certificate, no new order.
	st3, err := s.handshake(t, strings.ToUpper(s.name[:1])+s.name[1:])
	if err != nil || !st3.PeerCertificates[0].Equal(st.PeerCertificates[0]) || s.pebble.Orders() != orders {
		t.Fatalf("mixed-case SNI: %v, or a new certificate or order (%d → %d)", err, orders, s.pebble.Orders())
	}
	if exp, ok := s.m.Expiries()[s.name]; !ok || !exp.Equal(st.PeerCertificates[0].NotAfter) {
		t.Fatalf("Expiries %v, want %s at %s", s.m.Expiries(), s.name, st.PeerCertificates[0].NotAfter)
	}
	checkCacheDir(t, s.m.cfg.CacheDir)
}

func TestPebbleHTTP01(t *testing.T) {
	t.Parallel()
	s := newSite(t, http01, pebbletest.Options{})
	st, err := s.handshake(t, s.name)
	if err != nil {
		t.Fatalf("first handshake (issuance): %v\n%s\n%s", err, s.logs, s.pebble.Log())
	}
	s.checkIssued(t, st)
	if s.httpHits.Load() == 0 || s.alpnHits.Load() != 0 {
		t.Fatalf("validated by http-01 %d times, tls-alpn-01 %d times: want http-01 alone", s.httpHits.Load(), s.alpnHits.Load())
	}
	// Everything else on the plain listener is a 308 to https, path and query kept.
	var req fasthttp.Request
	var resp fasthttp.Response
	req.SetRequestURI("http://" + s.http + "/orders/7?tab=items")
	req.Header.SetHost(s.name)
	req.UseHostHeader = true
	req.Header.SetMethod(fasthttp.MethodPost)
	if err := fasthttp.DoTimeout(&req, &resp, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	_, httpsPort, _ := net.SplitHostPort(s.https)
	want := "https://" + s.name + ":" + httpsPort + "/orders/7?tab=items"
	if resp.StatusCode() != fasthttp.StatusPermanentRedirect || string(resp.Header.Peek("Location")) != want {
		t.Fatalf("plain request: %d %q, want 308 %q", resp.StatusCode(), resp.Header.Peek("Location"), want)
	}
	checkCacheDir(t, s.m.cfg.CacheDir)
}

// A certificate that lives 12 s is renewed by autocert a third of its life before it expires;
// new handshakes get the new one, and the cache holds it for the next start.
func TestPebbleRenewal(t *testing.T) {
	t.Parallel()
	s := newSite(t, tlsALPN01, pebbletest.Options{Validity: 12 * time.Second})
	st, err := s.handshake(t, s.name)
	if err != nil {
		t.Fatalf("first handshake (issuance): %v\n%s\n%s", err, s.logs, s.pebble.Log())
	}
	s.checkIssued(t, st)
	first := st.PeerCertificates[0]
	if life := first.NotAfter.Sub(first.NotBefore); life > time.Minute {
		t.Fatalf("Pebble issued a %s certificate; the short profile was not applied", life)
	}
	var renewed *x509.Certificate
	ok := pebbletest.WaitFor(context.Background(), renewTimeout, func() bool {
		st, err := s.handshake(t, s.name)
		if err != nil {
			t.Logf("handshake during renewal: %v", err)
			return false
		}
		if leaf := st.PeerCertificates[0]; leaf.SerialNumber.Cmp(first.SerialNumber) != 0 {
			s.checkIssued(t, st)
			renewed = leaf
			return true
		}
		return false
	})
	if !ok {
		t.Fatalf("no renewed certificate served within %s\n%s\n%s", renewTimeout, s.logs, s.pebble.Log())
	}
	if !renewed.NotAfter.After(first.NotAfter) {
		t.Fatalf("renewed certificate expires %s, not after the first's %s", renewed.NotAfter, first.NotAfter)
	}
	if s.pebble.Orders() < 2 {
		t.Fatalf("%d orders at Pebble, want a second one for the renewal", s.pebble.Orders())
	}
	// The cache holds a certificate at least as new as the one served (autocert writes it first).
	data, err := os.ReadFile(filepath.Join(s.m.cfg.CacheDir, s.name))
	if err != nil {
		t.Fatal(err)
	}
	if leaf, ok := leafFromCachePEM(data); !ok || leaf.NotAfter.Before(renewed.NotAfter) {
		t.Fatalf("cache entry %v, want one expiring ≥ %s (the renewed certificate)", ok, renewed.NotAfter)
	}
}

// A scanner's SNI (or none) fails fast and never reaches the CA: no order, not even a DNS lookup;
// the refusal is logged once per name. The configured name, in the same process, is issued.
func TestPebbleRefusedNameMakesNoOrder(t *testing.T) {
	t.Parallel()
	s := newSite(t, tlsALPN01, pebbletest.Options{})
	refused := "scanner-" + uniqueName(t)
	for range 3 {
		if _, err := s.handshake(t, refused); err == nil {
			t.Fatal("handshake for an unconfigured name succeeded")
		}
	}
	conn, err := cryptotls.Dial("tcp", s.https, &cryptotls.Config{InsecureSkipVerify: true}) // IP, so no SNI
	if err == nil {
		conn.Close()
		t.Fatal("handshake without SNI succeeded")
	}
	// The :80 challenge path refuses the name too.
	var req fasthttp.Request
	var resp fasthttp.Response
	req.SetRequestURI("http://" + s.http + acmePrefix + "token")
	req.Header.SetHost(refused + ":80")
	req.UseHostHeader = true
	if err := fasthttp.DoTimeout(&req, &resp, 10*time.Second); err != nil || resp.StatusCode() == fasthttp.StatusOK {
		t.Fatalf("challenge request for an unconfigured name: %v %d", err, resp.StatusCode())
	}
	if n := s.pebble.Orders(); n != 0 {
		t.Fatalf("%d orders at Pebble for a refused name\n%s", n, s.pebble.Log())
	}
	if n := s.pebble.DNSQueries(t, refused); n != 0 {
		t.Fatalf("Pebble looked up the refused name %d times", n)
	}
	if n := strings.Count(s.logs.String(), `"sni":"`+refused+`"`); n != 1 {
		t.Fatalf("refusal of %s logged %d times, want once:\n%s", refused, n, s.logs)
	}
	if strings.Contains(s.logs.String(), "fasthttp:") {
		t.Fatalf("the HTTP server logged refused handshakes itself (one line per scanner connection):\n%s", s.logs)
	}

	// Control: the counters above do move for a configured name.
	st, err := s.handshake(t, s.name)
	if err != nil {
		t.Fatalf("configured name: %v\n%s", err, s.pebble.Log())
	}
	s.checkIssued(t, st)
	if s.pebble.Orders() == 0 || s.pebble.DNSQueries(t, s.name) == 0 {
		t.Fatalf("configured name: %d orders, %d DNS queries: the refusal checks above prove nothing", s.pebble.Orders(), s.pebble.DNSQueries(t, s.name))
	}
}

// Two names on one Manager: each gets its own certificate on its first handshake.
func TestPebbleTwoDomains(t *testing.T) {
	t.Parallel()
	a, b := uniqueName(t), "www."+uniqueName(t)
	s := newSite(t, tlsALPN01, pebbletest.Options{}, a, b)
	for _, name := range []string{a, b} {
		st, err := s.handshake(t, name)
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, s.pebble.Log())
		}
		s.checkIssuedFor(t, name, st)
	}
	if got := s.m.Expiries(); len(got) != 2 {
		t.Fatalf("Expiries %v, want both names", got)
	}
}

// An existing, too-open cache directory is tightened: it holds the ACME account key.
func TestCacheDirTightened(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Mode: "auto", Domains: []string{"app.frontdoor.test"}, CacheDir: dir, HTTPSAddr: ":443", HTTPAddr: ":80"}, zerolog.Nop()); err != nil {
		t.Fatal(err)
	}
	checkCacheDir(t, dir)
}

// checkCacheDir: the directory is 0700 and every file autocert wrote in it 0600 (account key,
// certificate keys).
func checkCacheDir(t *testing.T, dir string) {
	t.Helper()
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("cache dir %s mode %o, want 700", dir, st.Mode().Perm())
	}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if info, _ := d.Info(); info.Mode().Perm()&0o077 != 0 {
			t.Errorf("cache file %s mode %o: readable by others", p, info.Mode().Perm())
		}
		return nil
	})
}

// fasthttpLog marks what the HTTP server itself logs.
type fasthttpLog struct{ w *syncBuffer }

func (l fasthttpLog) Printf(format string, args ...any) {
	fmt.Fprintf(l.w, "fasthttp: "+format+"\n", args...)
}

// syncBuffer collects log output written by several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
