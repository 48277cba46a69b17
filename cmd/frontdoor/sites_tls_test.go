package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/valyala/fasthttp"

	"github.com/frontdoorhq/frontdoor/internal/phpfpmtest"
	"github.com/frontdoorhq/frontdoor/tls/pebbletest"
)

// testName is a fresh host name under frontdoor.test, so nothing Pebble remembers helps it.
func testName(prefix string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b) + ".frontdoor.test"
}

// writeSelfSigned writes a self-signed certificate (its own root) for names, and returns the
// files and a pool that trusts it.
func writeSelfSigned(t *testing.T, dir string, names ...string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "c.crt"), filepath.Join(dir, "c.key")
	writeYAML(t, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeYAML(t, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})))
	return certFile, keyFile, pool
}

// tlsGet makes one HTTPS request over a fresh connection with this SNI and Host, verified
// against roots, and returns the leaf the server showed, the status and the body.
func tlsGet(addr, sni, host, path string, roots *x509.CertPool) (*x509.Certificate, int, string, error) {
	d := &net.Dialer{Timeout: 90 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: sni, RootCAs: roots})
	if err != nil {
		return nil, 0, "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, host)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil, 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return c.ConnectionState().PeerCertificates[0], resp.StatusCode, string(b), nil
}

// pebbleFor starts Pebble validating against the server's https address (tls-alpn-01), with
// the YAML tls section that points frontdoor at it.
func pebbleFor(t *testing.T, https, http80 string) (*pebbletest.Server, string) {
	t.Helper()
	port := func(a string) int { _, p, _ := net.SplitHostPort(a); n, _ := strconv.Atoi(p); return n }
	pb := pebbletest.Start(t, pebbletest.Options{TLSPort: port(https), HTTPPort: pebbletest.ClosedPort(t)})
	tlsYAML := fmt.Sprintf("tls: {mode: auto, acme_email: ops@frontdoor.test, cert_cache: %s, acme_directory: %s, acme_ca_root: %s, https_addr: %q, http_addr: %q}\n",
		filepath.Join(t.TempDir(), "certs"), pb.DirectoryURL, pb.ListenerCAFile, https, http80)
	return pb, tlsYAML
}

// Three sites on one TLS listener: a and b get their certificates from Pebble (ACME, one
// manager for both names), c serves a certificate file (with a wildcard) and is the default
// site. SNI picks the certificate, Host the site's root, upstream and apps; an unknown SNI is
// refused with no order at the CA; an unknown Host over TLS gets 421, on :80 404.
func TestSitesThreeOnOneTLSListener(t *testing.T) {
	https, http80, plain := freeAddr(t), freeAddr(t), freeAddr(t)
	pb, tlsYAML := pebbleFor(t, https, http80)
	a, b := testName("site-a"), testName("site-b")
	c := testName("site-c")
	dir := t.TempDir()
	certC, keyC, poolC := writeSelfSigned(t, dir, c, "*."+c)
	envC := filepath.Join(dir, "c.env")
	writeYAML(t, envC, "REVERB_APP_ID=c1\nREVERB_APP_KEY=keyc\nREVERB_APP_SECRET=secretc\n")
	cfg := filepath.Join(dir, "frontdoor.yaml")
	head := fmt.Sprintf("listen: %s\nadmin: \"off\"\n%ssites:\n", plain, tlsYAML)
	siteA := fmt.Sprintf("  - {name: a, hosts: [%s], apps: [{id: a1, key: keya, secret: sa}], proxy: {root: %s, upstreams: [%s]}}\n", a, siteRoot(t, "root a"), namedUpstream(t, "a"))
	siteB := fmt.Sprintf("  - {name: b, hosts: [%s], apps: [{id: b1, key: keyb, secret: sb}], proxy: {root: %s, upstreams: [%s]}}\n", b, siteRoot(t, "root b"), namedUpstream(t, "b"))
	siteC := fmt.Sprintf("  - {name: c, default: true, hosts: [%s, '*.%s'], env_file: %s, tls: {cert: %s, key: %s}, proxy: {root: %s, upstreams: [%s]}}\n", c, c, envC, certC, keyC, siteRoot(t, "root c"), namedUpstream(t, "c"))
	writeYAML(t, cfg, head+siteA+siteB+siteC)
	srv, logs := startSitesServer(t, "--config", cfg)
	// Ready before any ACME certificate exists (they come at the first handshake); c's file is loaded.
	var rc fasthttp.RequestCtx
	srv.serveReady(&rc)
	if rc.Response.StatusCode() != 200 {
		t.Fatalf("/readyz %d %s, want 200", rc.Response.StatusCode(), rc.Response.Body())
	}

	for _, s := range []struct{ name, want string }{{a, "a"}, {b, "b"}} {
		leaf, code, body, err := tlsGet(https, s.name, s.name, "/hello.txt", pb.Roots())
		if err != nil {
			t.Fatalf("%s: %v\n%s\n%s", s.name, err, logs, pb.Log())
		}
		if !slices.Equal(leaf.DNSNames, []string{s.name}) || code != 200 || body != "root "+s.want {
			t.Errorf("%s: certificate for %v, %d %q", s.name, leaf.DNSNames, code, body)
		}
		if _, code, body, _ := tlsGet(https, s.name, s.name, "/page", pb.Roots()); code != 200 || body != s.want+" /page 0" {
			t.Errorf("%s /page = %d %q", s.name, code, body)
		}
	}
	for _, name := range []string{c, "tenant." + c} {
		leaf, code, body, err := tlsGet(https, name, name, "/page", poolC)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !slices.Contains(leaf.DNSNames, "*."+c) || code != 200 || body != "c /page 0" {
			t.Errorf("%s: certificate %v, %d %q", name, leaf.DNSNames, code, body)
		}
	}
	// No SNI (a bare IP): the default site's certificate.
	conn, err := tls.Dial("tcp", https, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("no SNI: %v", err)
	}
	if got := conn.ConnectionState().PeerCertificates[0].DNSNames; !slices.Contains(got, c) {
		t.Errorf("no SNI: certificate %v, want the default site's", got)
	}
	conn.Close()

	stranger := testName("stranger")
	if _, _, _, err := tlsGet(https, stranger, stranger, "/", pb.Roots()); err == nil {
		t.Error("an unknown SNI name got a certificate")
	}
	if _, code, _, err := tlsGet(https, a, stranger, "/hello.txt", pb.Roots()); err != nil || code != 421 {
		t.Errorf("unknown Host over TLS: %v %d, want 421", err, code)
	}
	if code, _ := plainGet(t, "GET", http80, stranger, "/", ""); code != 404 {
		t.Errorf("unknown Host on :80: %d, want 404", code)
	}
	if code, _ := plainGet(t, "GET", http80, a, "/x", ""); code != 308 {
		t.Errorf("site a on :80: %d, want the 308 to https", code)
	}
	if n := pb.Orders(); n != 2 {
		t.Errorf("%d orders at Pebble, want 2 (sites a and b, none for the stranger)", n)
	}

	// Each site's sockets: its own app's key (c's from its env_file); another site's key is refused.
	var kept []*websocket.Conn // stay open across the reload below
	for _, s := range []struct {
		host, key string
		roots     *x509.CertPool
	}{{a, "keya", pb.Roots()}, {c, "keyc", poolC}} {
		d := &websocket.Dialer{HandshakeTimeout: 10 * time.Second, TLSClientConfig: &tls.Config{ServerName: s.host, RootCAs: s.roots}}
		ws, _, err := dialSite(d, "wss", https, s.host, s.key)
		if err != nil {
			t.Fatalf("wss %s %s: %v", s.host, s.key, err)
		}
		defer ws.Close()
		if ev := readEvent(t, ws); ev.Event != "pusher:connection_established" {
			t.Errorf("wss %s: %+v", s.host, ev)
		}
		kept = append(kept, ws)
	}
	d := &websocket.Dialer{HandshakeTimeout: 10 * time.Second, TLSClientConfig: &tls.Config{ServerName: a, RootCAs: pb.Roots()}}
	if _, status, err := dialSite(d, "wss", https, a, "keyb"); err == nil || status != 404 {
		t.Errorf("site b's key on site a: %v %d, want 404", err, status)
	}

	// A reload removes ACME site b and adds ACME site e: the ACME allow-list changes (a new
	// manager, same account and cache), a's and c's sockets stay, e gets its certificate, b none.
	e := testName("site-e")
	siteE := fmt.Sprintf("  - {name: e, hosts: [%s], apps: [{id: e1, key: keye, secret: se}], proxy: {root: %s, upstreams: [%s]}}\n", e, siteRoot(t, "root e"), namedUpstream(t, "e"))
	writeYAML(t, cfg, head+siteA+siteC+siteE)
	srv.reload([]string{"--config", cfg})
	if !strings.Contains(logs.String(), "configuration reloaded") {
		t.Fatalf("reload did not apply:\n%s", logs)
	}
	for _, ws := range kept {
		ping(t, ws)
	}
	if leaf, code, body, err := tlsGet(https, e, e, "/hello.txt", pb.Roots()); err != nil || !slices.Equal(leaf.DNSNames, []string{e}) || code != 200 || body != "root e" {
		t.Errorf("added site e: %v %d %q\n%s", err, code, body, pb.Log())
	}
	if _, code, body, err := tlsGet(https, a, a, "/hello.txt", pb.Roots()); err != nil || code != 200 || body != "root a" {
		t.Errorf("site a after the reload: %v %d %q", err, code, body)
	}
	if _, _, _, err := tlsGet(https, b, b, "/", pb.Roots()); err == nil {
		t.Error("removed site b still completes a handshake")
	}
	if n := pb.Orders(); n != 3 {
		t.Errorf("%d orders, want 3 (a, b, then e; a's certificate came from the cache)", n)
	}
	for _, ws := range kept {
		ping(t, ws)
	}
}

// phpFPMAsk is php-fpm for the sites' roots (SCRIPT_FILENAME names the script, so one pool
// serves every root).
func phpFPMAsk(t *testing.T, _ string) string { return phpfpmtest.Start(t, 4) }

// askScript is the tenant check as a Laravel route would do it, in plain PHP: /tls/allowed
// answers 200 for tenants' domains (here: names starting tenant- or storm-) and 404 otherwise,
// and logs each question; any other path is the tenant's page.
const askScript = `<?php
$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
if ($path === '/tls/allowed') {
    $d = $_GET['domain'] ?? '';
    file_put_contents(__DIR__ . '/../asks.log', $d . "\n", FILE_APPEND | LOCK_EX);
    if (str_starts_with($d, 'tenant-') || str_starts_with($d, 'storm-')) { echo 'ok'; exit; }
    http_response_code(404);
    echo 'unknown domain';
    exit;
}
echo 'tenant page for ' . $_SERVER['HTTP_HOST'];
`

// On-demand TLS against Pebble and real php-fpm: a tenant domain the app allows is ordered at
// its first handshake and then serves pages and wss:// from its site; a domain the app refuses is
// never ordered and asked once (cached); a storm of 200 unknown names that the app would all
// allow costs the CA at most the order burst and the app at most the ask budget, one ask per name.
func TestSitesOnDemandTLS(t *testing.T) {
	https, http80 := freeAddr(t), freeAddr(t)
	pb, tlsYAML := pebbleFor(t, https, http80)
	app := t.TempDir()
	public := filepath.Join(app, "public")
	if err := os.MkdirAll(public, 0o755); err != nil {
		t.Fatal(err)
	}
	writeYAML(t, filepath.Join(public, "index.php"), askScript)
	fpm := phpFPMAsk(t, public)
	const orderBurst, askPerMin = 2, 6 // asks: a burst of 10 (askLimiter), then one per 10 s
	tlsYAML = strings.Replace(tlsYAML, "}\n", fmt.Sprintf(", on_demand: {orders_per_minute: 0.001, burst: %d, asks_per_minute: %d}}\n", orderBurst, askPerMin), 1)
	platform := testName("platform")
	cfg := filepath.Join(app, "frontdoor.yaml")
	writeYAML(t, cfg, "listen: \"\"\nadmin: \"off\"\n"+tlsYAML+"sites:\n"+
		fmt.Sprintf("  - {name: tenants, hosts: [%s], apps: [{id: t1, key: keyt, secret: st}], on_demand: {ask: /tls/allowed}, proxy: {root: %s, upstreams: [%s]}}\n", platform, public, fpm))
	srv, logs := startSitesServer(t, "--config", cfg)
	asks := func() []string {
		raw, _ := os.ReadFile(filepath.Join(app, "asks.log"))
		return strings.Fields(string(raw))
	}

	tenant := testName("tenant")
	leaf, code, body, err := tlsGet(https, tenant, tenant, "/dashboard", pb.Roots())
	if err != nil {
		t.Fatalf("tenant: %v\n%s\n%s", err, logs, pb.Log())
	}
	if !slices.Equal(leaf.DNSNames, []string{tenant}) || code != 200 || body != "tenant page for "+tenant {
		t.Fatalf("tenant: certificate %v, %d %q", leaf.DNSNames, code, body)
	}
	d := &websocket.Dialer{HandshakeTimeout: 10 * time.Second, TLSClientConfig: &tls.Config{ServerName: tenant, RootCAs: pb.Roots()}}
	ws, _, err := dialSite(d, "wss", https, tenant, "keyt")
	if err != nil {
		t.Fatalf("wss on the tenant's domain: %v", err)
	}
	readEvent(t, ws)
	ws.Close()

	stranger := testName("stranger")
	for range 3 {
		if _, _, _, err := tlsGet(https, stranger, stranger, "/", pb.Roots()); err == nil {
			t.Fatal("a refused domain got a certificate")
		}
	}
	if n := pb.Orders(); n != 1 {
		t.Fatalf("%d orders, want 1 (the tenant; none for the refused domain)", n)
	}
	if got := asks(); !slices.Equal(got, []string{tenant, stranger}) {
		t.Fatalf("asks %v, want the tenant and the stranger once each", got)
	}

	start := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 20)
	for i := range 200 {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			name := "storm-" + strconv.Itoa(i%100) + "-" + tenant // each name twice
			tlsGet(https, name, name, "/", pb.Roots())
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	got := asks()[2:]
	seen := map[string]int{}
	for _, n := range got {
		seen[n]++
	}
	for n, k := range seen {
		if k > 1 {
			t.Errorf("%s asked %d times: answers are cached and coalesced per name", n, k)
		}
	}
	// The ask budget: the burst of 10, one more per 10 s of the storm, and the one in flight.
	if limit := 10 + int(elapsed.Seconds()*askPerMin/60) + 1; len(got) > limit {
		t.Errorf("%d asks during the storm (%s), want ≤ %d", len(got), elapsed, limit)
	}
	stats := srv.sites.Load().acme.OnDemandStats()
	// The tenant's order took one token of the burst; the storm gets the rest.
	if n := pb.Orders(); n > orderBurst {
		t.Errorf("%d orders at Pebble after the storm, want ≤ %d (stats %+v)", n, orderBurst, stats)
	}
	if stats.Orders != orderBurst || stats.RateLimited == 0 {
		t.Errorf("stats %+v: want the burst's orders and no more", stats)
	}
	// The same counters reach /metrics.
	mfs, err := srv.metrics.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() != "frontdoor_on_demand_tls_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == "order" {
				found = uint64(m.GetCounter().GetValue()) == stats.Orders
			}
		}
	}
	if !found {
		t.Errorf("frontdoor_on_demand_tls_total{event=\"order\"} missing or not %d", stats.Orders)
	}
}
