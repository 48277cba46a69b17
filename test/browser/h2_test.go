//go:build linux

package browser

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/frontdoorhq/frontdoor/tls/pebbletest"
)

// TestBrowserH2LaravelPage: Chromium loads a Laravel-shaped page with 40 hashed assets (JS
// chunks, CSS, fonts, images under build/assets) from frontdoor over HTTP/2 (every Navigation and
// Resource Timing entry says nextHopProtocol "h2"), and the page's pusher-js connection to the
// same origin (wss://, HTTP/1.1 on the same port) receives an event published through the
// signed API.
func TestBrowserH2LaravelPage(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	need(t, "chromium", "apt-get install -y --no-install-recommends chromium", err == nil)
	repo := repoRoot(t)
	nm := filepath.Join(repo, "test", "e2e", "node_modules")
	pusherJS := filepath.Join(nm, "pusher-js", "dist", "web", "pusher.min.js")
	echoJS := filepath.Join(nm, "laravel-echo", "dist", "echo.iife.js")
	need(t, "pusher-js and laravel-echo", "(cd test/e2e && npm ci)", exists(pusherJS) && exists(echoJS))
	bin := buildFrontdoor(t, repo)

	root := t.TempDir()
	assets := writeLaravelSite(t, root, true)
	copyFile(t, pusherJS, filepath.Join(root, "pusher.min.js"))
	copyFile(t, echoJS, filepath.Join(root, "echo.iife.js"))
	certFile, keyFile, spki := siteCert(t, t.TempDir())

	port := pebbletest.FreePort(t)
	origin := "https://" + site + ":" + strconv.Itoa(port)
	fd := startFrontdoor(t, bin,
		"--domain", site, "--tls", "files", "--tls-cert", certFile, "--tls-key", keyFile,
		"--https-addr", "127.0.0.1:"+strconv.Itoa(port), "--http-addr", "127.0.0.1:"+strconv.Itoa(pebbletest.FreePort(t)),
		"--listen", "", "--admin", "off", "--env-file", "", "--log-format", "json",
		"--root", root, "--app-id", appID, "--app-key", appKey, "--app-secret", appSecret,
		"--allowed-origins", site,
	)
	client := h2SiteClient(port)
	if !pebbletest.WaitFor(context.Background(), pageTimeout, func() bool {
		resp, err := client.Get(origin + "/page.html")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}) {
		t.Fatalf("frontdoor not serving\n%s", fd.log())
	}

	profile := t.TempDir()
	browser := startChromium(t, chromium, profile,
		"--host-resolver-rules=MAP "+site+" 127.0.0.1",
		"--ignore-certificate-errors-spki-list="+spki,
		origin+"/page.html")
	ctx := context.Background()
	dt := attachPage(t, ctx, profile, "/page.html", browser.log)
	defer dt.close()

	type entry struct {
		Name  string `json:"name"`
		Proto string `json:"proto"`
		Type  string `json:"type"`
	}
	var entries []entry
	var loaded float64
	if !pebbletest.WaitFor(ctx, pageTimeout, func() bool {
		_ = dt.eval(`performance.getEntriesByType('navigation')[0]?.loadEventEnd || 0`, &loaded)
		return loaded > 0
	}) {
		t.Fatalf("page never finished loading\nchromium:\n%s", browser.log())
	}
	// A preloaded font may finish after the load event: wait until every asset has an entry.
	seen := map[string]bool{}
	pebbletest.WaitFor(ctx, pageTimeout, func() bool {
		if err := dt.eval(`performance.getEntries().filter(e => e.entryType === 'navigation' || e.entryType === 'resource')
			.map(e => ({name: e.name, proto: e.nextHopProtocol, type: e.entryType}))`, &entries); err != nil {
			return false
		}
		clear(seen)
		for _, e := range entries {
			seen[strings.TrimPrefix(e.Name, origin+"/")] = true
		}
		for _, a := range assets {
			if !seen[a] {
				return false
			}
		}
		return true
	})
	for _, e := range entries {
		if e.Proto != "h2" {
			t.Errorf("%s %s over %q, want h2", e.Type, e.Name, e.Proto)
		}
	}
	for _, a := range assets {
		if !seen[a] {
			t.Errorf("asset %s not loaded (entries: %d)", a, len(entries))
		}
	}
	var chunks int
	if err := dt.eval(`window.__chunks`, &chunks); err != nil || chunks != 16 {
		t.Errorf("%d of 16 JS chunks ran (%v)", chunks, err)
	}

	// The socket: subscribed over wss:// on the same origin, and an event reaches the page.
	type pageState struct {
		Phase    string            `json:"phase"`
		Received []json.RawMessage `json:"received"`
		Errors   []string          `json:"errors"`
	}
	var st pageState
	read := func() pageState {
		var s pageState
		_ = dt.eval("window.__state", &s)
		return s
	}
	if !pebbletest.WaitFor(ctx, pageTimeout, func() bool { st = read(); return st.Phase == "subscribed" }) {
		t.Fatalf("page never subscribed: %+v\nfrontdoor:\n%s", st, fd.log())
	}
	body := `{"name":"order.shipped","channels":["orders"],"data":"{\"order\":8,\"via\":\"h2 page\"}"}`
	resp, err := client.Do(signedPost(t, origin, "/apps/"+appID+"/events", body))
	if err != nil {
		t.Fatal(err)
	}
	apiBody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Fatalf("publish over %s: %s %s", resp.Proto, resp.Status, apiBody)
	}
	if !pebbletest.WaitFor(ctx, pageTimeout, func() bool { st = read(); return len(st.Received) > 0 }) {
		t.Fatalf("page received nothing: %+v\nfrontdoor:\n%s", st, fd.log())
	}
	var got map[string]any
	if err := json.Unmarshal(st.Received[0], &got); err != nil || got["order"] != float64(8) {
		t.Fatalf("page received %s", st.Received[0])
	}
	if len(st.Errors) > 0 {
		t.Errorf("page errors: %v", st.Errors)
	}
}

// h2SiteClient speaks HTTP/2 only to the site on loopback. The certificate is the test's own
// throwaway one (siteCert), so it is not verified.
func h2SiteClient(port int) *http.Client {
	var p http.Protocols
	p.SetHTTP2(true)
	d := &net.Dialer{Timeout: 10 * time.Second}
	return &http.Client{
		Timeout: pageTimeout,
		Transport: &http.Transport{
			Protocols:       &p,
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: site},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return d.DialContext(ctx, network, "127.0.0.1:"+strconv.Itoa(port))
			},
		},
	}
}
