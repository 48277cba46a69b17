package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/rs/zerolog"

	"github.com/frontdoorhq/frontdoor/internal/testenv"
)

// syncLog is the shared log sink of internal/testenv.
type syncLog = testenv.LogBuffer

// startSitesServer runs a server in-process from these serve arguments with its log kept.
func startSitesServer(t *testing.T, args ...string) (*server, *syncLog) {
	t.Helper()
	s, err := loadSettings(args, env(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncLog{}
	srv := serveSettings(t, s, zerolog.New(logs))
	return srv, logs
}

// namedUpstream answers every request with its name and the path, as an app would.
func namedUpstream(t *testing.T, name string) string {
	t.Helper()
	u := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %d", name, r.URL.Path, len(b))
	}))
	t.Cleanup(u.Close)
	return u.URL
}

// siteRoot is a public/ directory holding hello.txt with this content.
func siteRoot(t *testing.T, content string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "public")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hello.txt"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// plainGet sends a request to addr with this Host and returns status and body.
func plainGet(t *testing.T, method, addr, host, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	c := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// dialSite opens a Pusher socket over ws:// (or wss:// with dialer's TLS settings) naming host.
func dialSite(dialer *websocket.Dialer, scheme, addr, host, key string) (*websocket.Conn, int, error) {
	h := http.Header{"Host": {host}}
	c, resp, err := dialer.Dial(scheme+"://"+addr+"/app/"+key+"?protocol=7&client=go&version=1", h)
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	return c, status, err
}

func writeYAML(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Sites that contradict each other, or flags that describe one site beside sites:, stop
// start-up with a message naming the key and the site.
func TestSitesConfigErrors(t *testing.T) {
	base := "tls: {mode: \"off\"}\nsites:\n"
	for _, c := range []struct {
		name, yaml string
		args       []string
		want       string
	}{
		{"flag beside sites", base + "  - {hosts: [a.example.com]}\n", []string{"--upstream", "http://127.0.0.1:1", "--root", "/tmp"}, "--upstream: set beside sites"},
		{"env-file beside sites", base + "  - {hosts: [a.example.com]}\n", []string{"--env-file", "/nonexistent/.env"}, "--env-file: set beside sites"},
		{"host twice", base + "  - {name: a, hosts: [a.example.com]}\n  - {name: b, hosts: [A.example.com.]}\n", nil, `"a.example.com" is also a host of site a`},
		{"app key twice", base + "  - {name: a, hosts: [a.example.com], apps: [{id: '1', key: k, secret: s}]}\n  - {name: b, hosts: [b.example.com], apps: [{id: '2', key: k, secret: s}]}\n", nil, "app key k is also used by site a"},
		{"two defaults", base + "  - {hosts: [a.example.com], default: true}\n  - {hosts: [b.example.com], default: true}\n", nil, "2 sites say default: true"},
		{"bad host", base + "  - {hosts: ['https://a.example.com']}\n", nil, "want a bare name"},
		{"acme wildcard", "sites:\n  - {hosts: ['*.example.com']}\n", nil, "ACME cannot issue wildcard certificates"},
		{"on_demand without ask path", base + "  - {hosts: [a.example.com], on_demand: {ask: tls}}\n", nil, "on_demand.ask"},
		{"top-level domains", "tls: {domains: [x.example.com]}\nsites:\n  - {hosts: [a.example.com]}\n", nil, "tls.domains, tls.cert and tls.key describe one site"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := writeFile(t, "frontdoor.yaml", c.yaml)
			_, err := load(t, append([]string{"--config", cfg}, c.args...), env())
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one containing %q", err, c.want)
			}
		})
	}
	// A site's .env gives its app as --env-file does; its root defaults to the .env's public/.
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "public"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeYAML(t, filepath.Join(dir, ".env"), "REVERB_APP_ID=shop\nREVERB_APP_KEY=shopkey\nREVERB_APP_SECRET=shopsecret\n")
	cfg := writeFile(t, "frontdoor.yaml", base+"  - {hosts: [shop.example.com], env_file: "+filepath.Join(dir, ".env")+"}\n")
	s, err := load(t, []string{"--config", cfg}, env())
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Sites) != 1 || len(s.Sites[0].Apps) != 1 || s.Sites[0].Apps[0].Key != "shopkey" || s.Sites[0].Proxy.Root != filepath.Join(dir, "public") {
		t.Fatalf("site %+v, want the .env's app and root %s/public", s.Sites, dir)
	}
	if len(s.Pusher.Apps) != 1 || s.Pusher.Apps[0].ID != "shop" || s.devCredentials {
		t.Fatalf("pusher apps %+v: want the site's app alone", s.Pusher.Apps)
	}
}

// Two sites on one plain listener: each Host reaches its own root and upstream, its sockets use
// only its own app keys, an unknown Host gets 404. A reload removes site b and adds site c: the
// clients of site a stay connected throughout (ping answered, same socket), b's socket is closed
// (its app is gone), c serves at once.
func TestSitesReloadKeepsOtherSitesConnected(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "frontdoor.yaml")
	addr := freeAddr(t)
	upA, upB, upC := namedUpstream(t, "a"), namedUpstream(t, "b"), namedUpstream(t, "c")
	rootA, rootB, rootC := siteRoot(t, "root a"), siteRoot(t, "root b"), siteRoot(t, "root c")
	head := fmt.Sprintf("listen: %s\nadmin: \"off\"\ntls: {mode: \"off\"}\nsites:\n", addr)
	siteA := fmt.Sprintf("  - {name: a, hosts: [a.frontdoor.test], apps: [{id: a1, key: keya, secret: sa}], proxy: {root: %s, upstreams: [%s]}}\n", rootA, upA)
	siteB := fmt.Sprintf("  - {name: b, hosts: [b.frontdoor.test], apps: [{id: b1, key: keyb, secret: sb}], proxy: {root: %s, upstreams: [%s], max_body: 10}}\n", rootB, upB)
	siteC := fmt.Sprintf("  - {name: c, hosts: [c.frontdoor.test, '*.c.frontdoor.test'], apps: [{id: c1, key: keyc, secret: sc}], proxy: {root: %s, upstreams: [%s]}}\n", rootC, upC)
	writeYAML(t, cfg, head+siteA+siteB)
	args := []string{"--config", cfg}
	srv, logs := startSitesServer(t, args...)

	for _, c := range []struct{ host, path, body, want string }{
		{"a.frontdoor.test", "/hello.txt", "", "root a"},
		{"b.frontdoor.test:8080", "/hello.txt", "", "root b"},
		{"a.frontdoor.test", "/page", "", "a /page 0"},
		{"B.frontdoor.test.", "/page", "", "b /page 0"},
		{"127.0.0.1", "/page", "", "a /page 0"}, // no name: the default site (the first)
		{"a.frontdoor.test", "/upload", strings.Repeat("x", 100), "a /upload 100"},
	} {
		method := "GET"
		if c.body != "" {
			method = "POST"
		}
		if code, body := plainGet(t, method, addr, c.host, c.path, c.body); code != 200 || body != c.want {
			t.Errorf("%s %s%s = %d %q, want %q", method, c.host, c.path, code, body, c.want)
		}
	}
	if code, _ := plainGet(t, "POST", addr, "b.frontdoor.test", "/upload", strings.Repeat("x", 100)); code != 413 {
		t.Errorf("site b's max_body: POST of 100 bytes = %d, want 413", code)
	}
	if code, body := plainGet(t, "GET", addr, "unknown.frontdoor.test", "/hello.txt", ""); code != 404 || !strings.Contains(body, "no site") {
		t.Errorf("unknown host = %d %q, want 404 from frontdoor", code, body)
	}

	d := &websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	ca, _, err := dialSite(d, "ws", addr, "a.frontdoor.test", "keya")
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	if ev := readEvent(t, ca); ev.Event != "pusher:connection_established" {
		t.Fatalf("site a socket: %+v", ev)
	}
	cb, _, err := dialSite(d, "ws", addr, "b.frontdoor.test", "keyb")
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	readEvent(t, cb)
	if _, status, err := dialSite(d, "ws", addr, "a.frontdoor.test", "keyb"); err == nil || status != 404 {
		t.Fatalf("site b's key on site a's host: err %v status %d, want 404", err, status)
	}

	handlerA := srv.sites.Load().lookup("a.frontdoor.test").handler
	writeYAML(t, cfg, head+siteA+siteC)
	srv.reload(args)
	if srv.sites.Load().lookup("a.frontdoor.test").handler != handlerA {
		t.Error("the unchanged site a got a new proxy handler")
	}
	if !strings.Contains(logs.String(), "configuration reloaded") {
		t.Fatalf("reload did not apply:\n%s", logs)
	}
	ping(t, ca)
	if code, body := plainGet(t, "GET", addr, "x.c.frontdoor.test", "/hello.txt", ""); code != 200 || body != "root c" {
		t.Errorf("added site c (wildcard) = %d %q", code, body)
	}
	if code, _ := plainGet(t, "GET", addr, "b.frontdoor.test", "/page", ""); code != 404 {
		t.Errorf("removed site b = %d, want 404", code)
	}
	// b's app went with its site: its socket is told so (4001) and closed.
	_ = cb.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, _, err := cb.ReadMessage(); err != nil {
			if !websocket.IsCloseError(err, 4001) {
				t.Errorf("site b's socket ended with %v, want close 4001", err)
			}
			break
		}
	}
	cc, _, err := dialSite(d, "ws", addr, "c.frontdoor.test", "keyc")
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	readEvent(t, cc)
	ping(t, ca) // still the same socket
}

// Without sites:, SIGHUP applies the proxy settings it used to ignore (upstream, root, max body),
// the log level, and refuses a listener change by name.
func TestReloadAppliesProxySettings(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "frontdoor.yaml")
	addr := freeAddr(t)
	up1, up2 := namedUpstream(t, "one"), namedUpstream(t, "two")
	root1, root2 := siteRoot(t, "root one"), siteRoot(t, "root two")
	conf := func(listen, level, up, root, maxBody string) string {
		return fmt.Sprintf("listen: %s\nadmin: \"off\"\nlog: {level: %s}\napps: [{id: '1', key: k, secret: s}]\nproxy: {root: %s, upstreams: [%s], max_body: %s}\n", listen, level, root, up, maxBody)
	}
	writeYAML(t, cfg, conf(addr, "info", up1, root1, "1M"))
	args := []string{"--config", cfg, "--env-file", ""}
	srv, logs := startSitesServer(t, args...)
	defer zerolog.SetGlobalLevel(zerolog.TraceLevel)
	if code, body := plainGet(t, "POST", addr, "localhost", "/x", strings.Repeat("y", 100)); code != 200 || body != "one /x 100" {
		t.Fatalf("before reload: %d %q", code, body)
	}
	writeYAML(t, cfg, conf("127.0.0.1:1", "warn", up2, root2, "10"))
	srv.reload(args)
	if code, body := plainGet(t, "GET", addr, "localhost", "/x", ""); code != 200 || body != "two /x 0" {
		t.Errorf("upstream after reload: %d %q, want the new upstream", code, body)
	}
	if code, body := plainGet(t, "GET", addr, "localhost", "/hello.txt", ""); body != "root two" {
		t.Errorf("root after reload: %d %q, want the new root", code, body)
	}
	if code, _ := plainGet(t, "POST", addr, "localhost", "/x", strings.Repeat("y", 100)); code != 413 {
		t.Errorf("max_body after reload: %d, want 413", code)
	}
	if zerolog.GlobalLevel() != zerolog.WarnLevel {
		t.Errorf("log level after reload: %s, want warn", zerolog.GlobalLevel())
	}
	if !strings.Contains(logs.String(), `"settings":["listen"]`) || !strings.Contains(logs.String(), "need a restart") {
		t.Errorf("the listen change was not refused by name:\n%s", logs)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err != nil {
		t.Errorf("the running listener went away: %v", err)
	}
}

// FuzzSiteHostName: a host name the config accepts is already normal (lower case, no trailing
// dot), has a wildcard only as its whole first label, and the table finds it for a request.
func FuzzSiteHostName(f *testing.F) {
	for _, s := range []string{"a.example.com", "*.example.com", "A.Example.COM.", "https://x.example.com", "*.*.x.com", "",
		"127.0.0.1", "[::1]:80", "localhost", "a..b.com", "x.com..", " x.com ", "xn--bcher-kva.example", "İ.example.com"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		n, err := siteHostName(h)
		if err != nil {
			return
		}
		if n2, err := siteHostName(n); err != nil || n2 != n {
			t.Fatalf("%q → %q → %q, %v: not stable", h, n, n2, err)
		}
		rest, wild := strings.CutPrefix(n, "*.")
		if strings.Contains(rest, "*") || strings.HasSuffix(n, ".") {
			t.Fatalf("%q accepted as %q", h, n)
		}
		site := &liveSite{}
		tbl := &siteTable{exact: map[string]*liveSite{}, wild: map[string]*liveSite{}}
		request := n
		if wild {
			tbl.wild[rest] = site
			request = "tenant." + rest
		} else {
			tbl.exact[n] = site
		}
		if got := tbl.lookup(siteHost([]byte(strings.ToUpper(request) + ":443"))); got != site && strings.ToLower(strings.ToUpper(request)) == request {
			t.Fatalf("%q: a request for %q does not find its site", h, request)
		}
	})
}

// `doctor --config` checks every site's env_file, each report under its site's name; the exit
// code is the worst one.
func TestDoctorChecksEverySite(t *testing.T) {
	dir := t.TempDir()
	for _, s := range []struct{ name, env string }{
		{"a", "BROADCAST_CONNECTION=reverb\nREVERB_APP_ID=1\nREVERB_APP_KEY=keyaaaaaaaaaaaaaaaaa\nREVERB_APP_SECRET=secretaaaaaaaaaaaaaa\n"},
		{"b", "BROADCAST_CONNECTION=log\nREVERB_APP_ID=2\nREVERB_APP_KEY=keybbbbbbbbbbbbbbbbb\nREVERB_APP_SECRET=secretbbbbbbbbbbbbbb\n"},
	} {
		if err := os.MkdirAll(filepath.Join(dir, s.name, "public"), 0o755); err != nil {
			t.Fatal(err)
		}
		writeYAML(t, filepath.Join(dir, s.name, ".env"), s.env)
	}
	cfg := filepath.Join(dir, "frontdoor.yaml")
	writeYAML(t, cfg, "tls: {mode: \"off\"}\nsites:\n  - {name: a, hosts: [a.example.com], env_file: a/.env}\n  - {name: b, hosts: [b.example.com], env_file: b/.env}\n")
	cmd := exec.Command(frontdoorBin(t), "doctor", "--config", cfg)
	out, _ := cmd.Output()
	text := string(out)
	ia, ib := strings.Index(text, "site a:"), strings.Index(text, "site b:")
	if ia < 0 || ib < ia || !strings.Contains(text[ia:ib], filepath.Join(dir, "a", ".env")) {
		t.Fatalf("want a report per site, a then b:\n%s", text)
	}
	if !strings.Contains(text[ib:], "broadcaster-not-reverb") || strings.Contains(text[ia:ib], "broadcaster-not-reverb") {
		t.Errorf("site b's own finding should be under site b alone:\n%s", text)
	}
	if cmd.ProcessState.ExitCode() != 1 {
		t.Errorf("exit %d, want 1 (errors in the sites' .env files)", cmd.ProcessState.ExitCode())
	}
}
