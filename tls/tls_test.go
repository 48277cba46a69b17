package tls

import (
	"bufio"
	"bytes"
	"context"
	cryptotls "crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
)

func serveTLS(t *testing.T, m *Manager) string {
	t.Helper()
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fasthttp.Server{Handler: m.WrapHSTS(func(ctx *fasthttp.RequestCtx) {
		if ctx.IsTLS() {
			ctx.SetBodyString("tls ok")
		}
	})}
	go s.Serve(m.NewListener(ln))
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

func TestSelfSignedHandshakeAndALPN(t *testing.T) {
	m, err := New(Config{Mode: "self-signed", Domains: []string{"app.local"}, HTTPSAddr: ":443", HTTPAddr: ":80", HSTS: time.Hour}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, m)
	conn, err := cryptotls.Dial("tcp", addr, &cryptotls.Config{InsecureSkipVerify: true, ServerName: "app.local", NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	st := conn.ConnectionState()
	if st.NegotiatedProtocol != "http/1.1" {
		t.Fatalf("ALPN chose %q: h2 must not be offered with HTTP2 off", st.NegotiatedProtocol)
	}
	if st.Version < cryptotls.VersionTLS12 || st.PeerCertificates[0].DNSNames[0] != "app.local" {
		t.Fatalf("version %x names %v", st.Version, st.PeerCertificates[0].DNSNames)
	}
	conn.Write([]byte("GET / HTTP/1.1\r\nHost: app.local\r\n\r\n"))
	resp := fasthttp.AcquireResponse()
	if err := resp.Read(bufio.NewReader(conn)); err != nil {
		t.Fatal(err)
	}
	if string(resp.Body()) != "tls ok" || string(resp.Header.Peek("Strict-Transport-Security")) != "max-age=3600" {
		t.Fatalf("body %q hsts %q", resp.Body(), resp.Header.Peek("Strict-Transport-Security"))
	}
	// TLS 1.1 is refused.
	if _, err := cryptotls.Dial("tcp", addr, &cryptotls.Config{InsecureSkipVerify: true, MaxVersion: cryptotls.VersionTLS11}); err == nil {
		t.Fatal("TLS 1.1 accepted")
	}
}

func writeCert(t *testing.T, dir, name string) (string, string) {
	t.Helper()
	lc, err := selfSigned([]string{name})
	if err != nil {
		t.Fatal(err)
	}
	key, err := x509.MarshalPKCS8PrivateKey(lc.cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	cf, kf := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(cf, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: lc.cert.Certificate[0]}), 0o600)
	os.WriteFile(kf, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600)
	return cf, kf
}

func peerName(t *testing.T, addr string) string {
	t.Helper()
	c, err := cryptotls.Dial("tcp", addr, &cryptotls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].DNSNames[0]
}

// Files are reloaded without dropping an open connection; a broken file keeps the old certificate.
func TestCertFilesReload(t *testing.T) {
	dir := t.TempDir()
	cf, kf := writeCert(t, dir, "one.example.com")
	m, err := New(Config{Mode: "files", CertFile: cf, KeyFile: kf, HTTPSAddr: ":443", HTTPAddr: ":80"}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, m)
	open, err := cryptotls.Dial("tcp", addr, &cryptotls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	if got := peerName(t, addr); got != "one.example.com" {
		t.Fatal(got)
	}
	writeCert(t, dir, "two.example.com")
	if err := m.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := peerName(t, addr); got != "two.example.com" {
		t.Fatalf("after reload: %s", got)
	}
	if _, ok := m.Expiries()["two.example.com"]; !ok {
		t.Fatalf("expiries %v", m.Expiries())
	}
	// The connection opened before the reload still works.
	open.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	resp := fasthttp.AcquireResponse()
	if err := resp.Read(bufio.NewReader(open)); err != nil || string(resp.Body()) != "tls ok" {
		t.Fatalf("old connection: %v %q", err, resp.Body())
	}
	os.WriteFile(cf, []byte("garbage"), 0o600)
	if err := m.Reload(); err == nil {
		t.Fatal("broken file accepted")
	}
	if got := peerName(t, addr); got != "two.example.com" {
		t.Fatalf("a failed reload replaced the certificate: %s", got)
	}
}

func TestFileChangeIsNoticed(t *testing.T) {
	dir := t.TempDir()
	cf, kf := writeCert(t, dir, "one.example.com")
	m, err := New(Config{Mode: "files", CertFile: cf, KeyFile: kf, HTTPSAddr: ":443", HTTPAddr: ":80"}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if m.filesChanged() {
		t.Fatal("changed before any change")
	}
	writeCert(t, dir, "two.example.com")
	later := time.Now().Add(time.Minute)
	os.Chtimes(cf, later, later)
	if !m.filesChanged() {
		t.Fatal("change not noticed")
	}
}

func TestRedirectAndFallback(t *testing.T) {
	m, _ := New(Config{Mode: "self-signed", HTTPSAddr: ":8443", HTTPAddr: ":80", HTTPRedirect: true}, zerolog.Nop())
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/orders/7?tab=items&x=%2F")
	ctx.Request.Header.SetHost("shop.example.com:80")
	ctx.Request.Header.SetMethod("POST")
	m.HTTPHandler(nil)(&ctx)
	if ctx.Response.StatusCode() != 308 || string(ctx.Response.Header.Peek("Location")) != "https://shop.example.com:8443/orders/7?tab=items&x=%2F" {
		t.Fatalf("%d %s", ctx.Response.StatusCode(), ctx.Response.Header.Peek("Location"))
	}
	for host, want := range map[string]string{
		"[::1]:80":         "https://[::1]:8443/",
		"shop.example.com": "https://shop.example.com:8443/",
	} {
		var c fasthttp.RequestCtx
		c.Request.SetRequestURI("/")
		c.Request.Header.SetHost(host)
		m.HTTPHandler(nil)(&c)
		if got := string(c.Response.Header.Peek("Location")); got != want {
			t.Errorf("Host %q redirected to %q, want %q", host, got, want)
		}
	}
	m443, _ := New(Config{Mode: "self-signed", HTTPSAddr: ":443", HTTPAddr: ":80", HTTPRedirect: true}, zerolog.Nop())
	var c6 fasthttp.RequestCtx
	c6.Request.SetRequestURI("/a?b")
	c6.Request.Header.SetHost("[2001:db8::1]")
	m443.HTTPHandler(nil)(&c6)
	if got := string(c6.Response.Header.Peek("Location")); got != "https://[2001:db8::1]/a?b" {
		t.Errorf("IPv6 host on 443: %q", got)
	}
	// A request target in absolute form (RFC 9112 §3.2.2) redirects to its path and query; the
	// path is kept as sent (no decoding of %2F, no resolution of "..": that is the app's business).
	for uri, want := range map[string]string{
		"http://shop.example.com/cart?x=1": "https://shop.example.com:8443/cart?x=1",
		"/a%2Fb/../c//d?q=%2F":             "https://shop.example.com:8443/a%2Fb/../c//d?q=%2F",
		"http://shop.example.com":          "https://shop.example.com:8443/",
	} {
		var c fasthttp.RequestCtx
		c.Request.SetRequestURI(uri)
		c.Request.Header.SetHost("shop.example.com")
		m.HTTPHandler(nil)(&c)
		if got := string(c.Response.Header.Peek("Location")); got != want {
			t.Errorf("target %q redirected to %q, want %q", uri, got, want)
		}
	}
	m2, _ := New(Config{Mode: "self-signed", HTTPSAddr: ":443", HTTPAddr: ":80", HTTPRedirect: false}, zerolog.Nop())
	var ctx2 fasthttp.RequestCtx
	ctx2.Request.SetRequestURI("/")
	m2.HTTPHandler(func(c *fasthttp.RequestCtx) { c.SetBodyString("plain") })(&ctx2)
	if string(ctx2.Response.Body()) != "plain" {
		t.Fatal("fallback not served")
	}
}

func TestHostPolicyStripsPortAndRefusesOthers(t *testing.T) {
	m, err := New(Config{Mode: "auto", Domains: []string{"app.example.com"}, CacheDir: filepath.Join(t.TempDir(), "certs"), HTTPSAddr: ":443", HTTPAddr: ":80"}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(m.cfg.CacheDir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("cache dir: %v %v", err, st)
	}
	if err := m.acme.HostPolicy(context.Background(), "app.example.com:80"); err != nil {
		t.Fatalf("name with port refused: %v", err)
	}
	if err := m.acme.HostPolicy(context.Background(), "evil.example.com"); err == nil {
		t.Fatal("unconfigured name allowed")
	}
	// A handshake for an unconfigured name fails without contacting the CA (none is reachable here).
	_, err = m.getCertificate(&cryptotls.ClientHelloInfo{ServerName: "scanner.example.net"})
	if err == nil {
		t.Fatal("certificate for an unconfigured name")
	}
	if _, err := m.getCertificate(&cryptotls.ClientHelloInfo{}); err == nil {
		t.Fatal("certificate without SNI")
	}
}

func TestValidateNamesTheFlag(t *testing.T) {
	cases := []struct {
		cfg  Config
		want string
	}{
		{Config{Mode: "auto", CacheDir: "/x", HTTPSAddr: ":443", HTTPAddr: ":80"}, "--domain"},
		{Config{Mode: "auto", Domains: []string{"localhost"}, CacheDir: "/x", HTTPSAddr: ":443", HTTPAddr: ":80"}, `"localhost"`},
		{Config{Mode: "auto", Domains: []string{"10.0.0.1"}, CacheDir: "/x", HTTPSAddr: ":443", HTTPAddr: ":80"}, "IP"},
		{Config{Mode: "auto", Domains: []string{"a.example.com"}, CacheDir: "/x", ACMEDirectory: "ftp://x", HTTPSAddr: ":443", HTTPAddr: ":80"}, "--acme-directory"},
		{Config{Mode: "files", HTTPSAddr: ":443", HTTPAddr: ":80"}, "--tls-cert"},
		{Config{Mode: "magic", HTTPSAddr: ":443", HTTPAddr: ":80"}, `--tls: invalid value "magic"`},
		{Config{Mode: "self-signed", HTTPSAddr: "443", HTTPAddr: ":80"}, "--https-addr"},
	}
	for _, c := range cases {
		err := c.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
}

func TestListenErrorNamesTheFix(t *testing.T) {
	msg := listenError("0.0.0.0:443", &net.OpError{Op: "listen", Err: os.NewSyscallError("bind", syscall.EACCES)}).Error()
	for _, want := range []string{"443", "setcap cap_net_bind_service", "AmbientCapabilities"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
}

// A certificate with less than a sixth of its life left is an error in the log, in both modes;
// one with plenty left is not mentioned.
func TestCheckExpiry(t *testing.T) {
	dir := t.TempDir()
	cf, kf := writeCert(t, dir, "files.example.com") // valid 365 days + 1 hour
	logs := &syncBuffer{}
	m, err := New(Config{Mode: "files", CertFile: cf, KeyFile: kf, HTTPSAddr: ":443", HTTPAddr: ":80"}, zerolog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	m.checkExpiry(time.Now())
	if strings.Contains(logs.String(), `"level":"error"`) {
		t.Fatalf("fresh certificate reported:\n%s", logs)
	}
	m.checkExpiry(time.Now().Add(320 * 24 * time.Hour)) // 45 days left of 365
	if !strings.Contains(logs.String(), `"name":"files.example.com"`) || !strings.Contains(logs.String(), "replace the files") {
		t.Fatalf("expiring file certificate not reported:\n%s", logs)
	}

	// Auto mode reads what autocert cached: key PEM, then the chain.
	cache := filepath.Join(t.TempDir(), "certs")
	logs = &syncBuffer{}
	m, err = New(Config{Mode: "auto", Domains: []string{"auto.example.com"}, CacheDir: cache, HTTPSAddr: ":443", HTTPAddr: ":80"}, zerolog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	lc, _ := selfSigned([]string{"auto.example.com"})
	key, _ := x509.MarshalPKCS8PrivateKey(lc.cert.PrivateKey)
	entry := append(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: key}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: lc.cert.Certificate[0]})...)
	if err := os.WriteFile(filepath.Join(cache, "auto.example.com"), entry, 0o600); err != nil {
		t.Fatal(err)
	}
	if exp := m.Expiries()["auto.example.com"]; !exp.Equal(lc.cert.Leaf.NotAfter) {
		t.Fatalf("Expiries from the cache: %v", m.Expiries())
	}
	m.checkExpiry(time.Now().Add(330 * 24 * time.Hour))
	if !strings.Contains(logs.String(), "automatic renewal keeps failing") {
		t.Fatalf("expiring cached certificate not reported:\n%s", logs)
	}
}

// A configured name whose certificate cannot be obtained is an error in the log, once a minute
// per name, not once per handshake (and not hidden at debug level with other failed handshakes).
func TestIssueFailureIsLoggedOnce(t *testing.T) {
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "https://" + dead.Addr().String() + "/dir"
	dead.Close() // connections to the CA are refused
	logs := &syncBuffer{}
	m, err := New(Config{Mode: "auto", Domains: []string{"down.example.com"}, CacheDir: filepath.Join(t.TempDir(), "certs"),
		ACMEDirectory: deadURL, HTTPSAddr: ":443", HTTPAddr: ":80"}, zerolog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, m)
	for range 3 {
		if c, err := cryptotls.Dial("tcp", addr, &cryptotls.Config{ServerName: "down.example.com", InsecureSkipVerify: true}); err == nil {
			c.Close()
			t.Fatal("handshake succeeded without a certificate")
		}
	}
	if n := strings.Count(logs.String(), "no certificate for a configured name"); n != 1 {
		t.Fatalf("issuance failure logged %d times, want once:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), `"level":"error"`) || !strings.Contains(logs.String(), `"sni":"down.example.com"`) {
		t.Fatalf("want an error naming the host:\n%s", logs)
	}
}

// FuzzRedirect: whatever Host and URI a client sends to :80, the answer is a 308 to an https://
// URL on that host (or a 400), never a header injection or a panic.
func FuzzRedirect(f *testing.F) {
	for _, s := range [][2]string{
		{"shop.example.com", "/orders/7?tab=items"}, {"shop.example.com:80", "/"}, {"[::1]:80", "/a"},
		{"[2001:db8::1]", "/x?y=%2F"}, {"", "/"}, {"a.example.com", "//evil.example.net/path"},
		{"a.example.com", "http://a.example.com/abs?x=1"},
	} {
		f.Add(s[0], s[1])
	}
	var handlers []fasthttp.RequestHandler
	for _, httpsAddr := range []string{":443", ":8443"} {
		m, err := New(Config{Mode: "self-signed", HTTPSAddr: httpsAddr, HTTPAddr: ":80", HTTPRedirect: true}, zerolog.Nop())
		if err != nil {
			f.Fatal(err)
		}
		handlers = append(handlers, m.HTTPHandler(nil))
	}
	f.Fuzz(func(t *testing.T, host, uri string) {
		for _, h := range handlers {
			var ctx fasthttp.RequestCtx
			ctx.Request.SetRequestURI(uri)
			ctx.Request.Header.SetHost(host)
			h(&ctx)
			loc := string(ctx.Response.Header.Peek("Location"))
			switch ctx.Response.StatusCode() {
			case fasthttp.StatusPermanentRedirect:
				rest, ok := strings.CutPrefix(loc, "https://")
				if i := strings.IndexByte(rest, '/'); !ok || i < 0 || strings.ContainsAny(loc, "\r\n") || strings.Contains(rest[i:], "://") && !strings.Contains(uri, "://") {
					t.Fatalf("Host %q URI %q → Location %q", host, uri, loc)
				}
			case fasthttp.StatusBadRequest:
			default:
				t.Fatalf("Host %q URI %q → %d", host, uri, ctx.Response.StatusCode())
			}
		}
	})
}

// HSTS survives a handler that replaces the whole response (as the proxy does with an upstream's)
// and does not override a policy the app set itself.
func TestHSTSAfterHandler(t *testing.T) {
	m, err := New(Config{Mode: "self-signed", HTTPSAddr: ":443", HTTPAddr: ":80", HSTS: 24 * time.Hour}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	var upstream fasthttp.Response
	upstream.SetBodyString("from PHP")
	replaces := m.WrapHSTS(func(ctx *fasthttp.RequestCtx) { upstream.CopyTo(&ctx.Response) })
	var ctx fasthttp.RequestCtx
	replaces(&ctx)
	if got := string(ctx.Response.Header.Peek("Strict-Transport-Security")); got != "max-age=86400" {
		t.Fatalf("after a replaced response: %q", got)
	}
	own := m.WrapHSTS(func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains; preload")
	})
	var ctx2 fasthttp.RequestCtx
	own(&ctx2)
	if got := string(ctx2.Response.Header.Peek("Strict-Transport-Security")); got != "max-age=63072000; includeSubDomains; preload" {
		t.Fatalf("the app's own policy was replaced: %q", got)
	}
}

// Through NewListener, handlers still see a TLS connection (fasthttp's IsTLS and
// TLSConnectionState), and a hijacked connection (a WebSocket upgrade) reads and writes
// through TLS.
func TestListenerTLSStateAndHijack(t *testing.T) {
	m, err := New(Config{Mode: "self-signed", Domains: []string{"ws.example.com"}, HTTPSAddr: ":443", HTTPAddr: ":80"}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		st := ctx.TLSConnectionState()
		if !ctx.IsTLS() || st == nil || st.ServerName != "ws.example.com" {
			ctx.Error("not TLS", fasthttp.StatusInternalServerError)
			return
		}
		ctx.SetStatusCode(fasthttp.StatusSwitchingProtocols)
		ctx.Hijack(func(c net.Conn) {
			buf := make([]byte, 5)
			if _, err := io.ReadFull(c, buf); err == nil {
				c.Write(bytes.ToUpper(buf))
			}
		})
	}}
	go s.Serve(m.NewListener(ln))
	t.Cleanup(func() { s.Shutdown() })
	c, err := cryptotls.Dial("tcp", ln.Addr().String(), &cryptotls.Config{InsecureSkipVerify: true, ServerName: "ws.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET /app/key HTTP/1.1\r\nHost: ws.example.com\r\n\r\n")
	br := bufio.NewReader(c)
	var resp fasthttp.Response
	resp.SkipBody = true
	if err := resp.Read(br); err != nil || resp.StatusCode() != fasthttp.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %d %s", err, resp.StatusCode(), resp.Body())
	}
	c.Write([]byte("hello"))
	echo := make([]byte, 5)
	if _, err := io.ReadFull(br, echo); err != nil || string(echo) != "HELLO" {
		t.Fatalf("hijacked echo %q %v", echo, err)
	}
}

func TestDefaultConfigIsValid(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c.Mode, c.Domains = "auto", []string{"app.example.com"}
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults + --domain: %v", err)
	}
}

// What a hijacker sees through NewListener unwraps, as *tls.Conn does, to the accepted conn: the
// WebSocket poller finds its socket under TLS this way.
func TestListenerConnUnwraps(t *testing.T) {
	m, err := New(Config{Mode: "self-signed", HTTPSAddr: ":443", HTTPAddr: ":80"}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	inner, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := m.NewListener(inner)
	defer ln.Close()
	client, err := net.Dial("tcp", inner.Addr().String()) // completes in the backlog
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	u, ok := c.(interface{ NetConn() net.Conn })
	if !ok {
		t.Fatalf("%T has no NetConn method", c)
	}
	if _, ok := u.NetConn().(*net.TCPConn); !ok {
		t.Fatalf("NetConn is %T, want the accepted *net.TCPConn", u.NetConn())
	}
}
