//go:build linux

// The browser tests run headless Chromium as a process group tied to the test (Pdeathsig):
// Linux only, like the CI that runs them.

package browser

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/frontdoorhq/frontdoor/tls/pebbletest"

	"github.com/frontdoorhq/frontdoor/internal/testenv"
)

const (
	site      = "app.frontdoor.test"
	appID     = "browser-app"
	appKey    = "browser-key" // also in testdata/page.html
	appSecret = "browser-secret"

	// Generous: CI is a loaded 2-core box. These bound a hang; they measure nothing.
	issueTimeout = 90 * time.Second
	pageTimeout  = 60 * time.Second
)

// need finds what the test runs: a missing piece skips, unless FRONTDOOR_REQUIRE_INTEGRATION=1.
func need(t *testing.T, what, hint string, ok bool) {
	t.Helper()
	if ok {
		return
	}
	testenv.Missing(t, what, "missing", hint)
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// The page, its socket and its certificate come from one frontdoor process: Chromium opens
// http://app.frontdoor.test/page.html, is redirected (308) to https:// (certificate obtained from
// Pebble over ACME by frontdoor itself), Laravel Echo subscribes over wss:// on the same origin,
// the test publishes through the signed HTTP API over https://, and the page shows the event.
func TestBrowserPageSocketCertificate(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	need(t, "chromium", "apt-get install -y --no-install-recommends chromium", err == nil)
	repo := repoRoot(t)
	nm := filepath.Join(repo, "test", "e2e", "node_modules")
	pusherJS := filepath.Join(nm, "pusher-js", "dist", "web", "pusher.min.js")
	echoJS := filepath.Join(nm, "laravel-echo", "dist", "echo.iife.js")
	need(t, "pusher-js and laravel-echo", "(cd test/e2e && npm ci)", exists(pusherJS) && exists(echoJS))

	httpsPort, httpPort := pebbletest.FreePort(t), pebbletest.FreePort(t)
	// Pebble validates tls-alpn-01 on frontdoor's HTTPS port and http-01 on its HTTP port.
	peb := pebbletest.Start(t, pebbletest.Options{HTTPPort: httpPort, TLSPort: httpsPort})
	bin := buildFrontdoor(t, repo)

	root := t.TempDir()
	for src, dst := range map[string]string{"testdata/page.html": "page.html", pusherJS: "pusher.min.js", echoJS: "echo.iife.js"} {
		copyFile(t, src, filepath.Join(root, dst))
	}
	origin := "https://" + site + ":" + strconv.Itoa(httpsPort)
	fd := startFrontdoor(t, bin,
		"--domain", site, "--acme-email", "ops@frontdoor.test",
		"--acme-directory", peb.DirectoryURL, "--acme-ca-root", peb.ListenerCAFile,
		"--cert-cache", filepath.Join(t.TempDir(), "certs"),
		"--https-addr", "127.0.0.1:"+strconv.Itoa(httpsPort), "--http-addr", "127.0.0.1:"+strconv.Itoa(httpPort),
		"--listen", "", "--admin", "off", "--env-file", "", "--log-format", "json",
		"--root", root, "--app-id", appID, "--app-key", appKey, "--app-secret", appSecret,
		"--allowed-origins", site, // as a production app would: only its own pages may connect
	)

	// The first handshake for the name makes frontdoor obtain its certificate from Pebble.
	client := siteClient(peb.Roots(), httpsPort)
	var page []byte
	if !pebbletest.WaitFor(context.Background(), issueTimeout, func() bool {
		resp, err := client.Get(origin + "/page.html")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		page, _ = io.ReadAll(resp.Body)
		return resp.StatusCode == http.StatusOK
	}) {
		t.Fatalf("page not served over https within %s\nfrontdoor:\n%s\npebble:\n%s", issueTimeout, fd.log(), peb.Log())
	}
	if !bytes.Contains(page, []byte("Echo.default")) {
		t.Fatalf("unexpected page: %.200s", page)
	}

	// Chromium trusts this CA only: the SPKI of Pebble's intermediate, which signs the leaf frontdoor
	// serves (chain = leaf + intermediate). Any other certificate error still fails the load.
	spki := sha256.Sum256(peb.Intermediate.RawSubjectPublicKeyInfo)
	profile := t.TempDir()
	browser := startChromium(t, chromium, profile,
		"--host-resolver-rules=MAP "+site+" 127.0.0.1",
		"--ignore-certificate-errors-spki-list="+base64.StdEncoding.EncodeToString(spki[:]),
		// The visitor types the plain address: frontdoor's :80 answers with a 308 to https://.
		"http://"+site+":"+strconv.Itoa(httpPort)+"/page.html")

	// Each wait below has its own budget: a slow start on a loaded box does not eat the next one's.
	ctx := context.Background()
	dt := attachPage(t, ctx, profile, "/page.html", browser.log)
	defer dt.close()

	type pageState struct {
		Phase      string            `json:"phase"`
		Connection string            `json:"connection"`
		SocketID   string            `json:"socketId"`
		Received   []json.RawMessage `json:"received"`
		Errors     []string          `json:"errors"`
	}
	var st pageState
	read := func() pageState {
		var s pageState
		if err := dt.eval("window.__state", &s); err != nil {
			t.Logf("eval: %v", err)
		}
		return s
	}
	if !pebbletest.WaitFor(ctx, pageTimeout, func() bool { st = read(); return st.Phase == "subscribed" }) {
		t.Fatalf("page never subscribed: %+v\nfrontdoor:\n%s\nchromium:\n%s", st, fd.log(), browser.log())
	}

	body := `{"name":"order.shipped","channels":["orders"],"data":"{\"order\":7,\"via\":\"signed API over https\"}"}`
	resp, err := client.Do(signedPost(t, origin, "/apps/"+appID+"/events", body))
	if err != nil {
		t.Fatal(err)
	}
	apiBody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("publish: %s %s", resp.Status, apiBody)
	}
	if !pebbletest.WaitFor(ctx, pageTimeout, func() bool { st = read(); return len(st.Received) > 0 }) {
		t.Fatalf("page received nothing: %+v\nfrontdoor:\n%s", st, fd.log())
	}
	var got map[string]any
	if err := json.Unmarshal(st.Received[0], &got); err != nil || got["order"] != float64(7) || got["via"] != "signed API over https" {
		t.Fatalf("page received %s", st.Received[0])
	}
	if len(st.Errors) > 0 {
		t.Errorf("page errors: %v", st.Errors)
	}

	// The socket went out as wss:// to the page's own origin, and the page itself was https://.
	var ws []string
	if err := dt.eval("window.__ws", &ws); err != nil {
		t.Fatal(err)
	}
	wantWS := "wss://" + site + ":" + strconv.Itoa(httpsPort) + "/app/" + appKey
	if len(ws) == 0 || !strings.HasPrefix(ws[0], wantWS) {
		t.Fatalf("WebSocket URLs %v, want %s…", ws, wantWS)
	}
	var href string
	if err := dt.eval("location.href", &href); err != nil || href != origin+"/page.html" {
		t.Fatalf("page at %q (%v), want %s/page.html after the redirect from http://", href, err, origin)
	}
}

// siteClient speaks to the site by name, resolved to loopback, trusting only the given roots.
func siteClient(roots *x509.CertPool, port int) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second}
	return &http.Client{
		Timeout: issueTimeout,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: roots},
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return d.DialContext(ctx, network, "127.0.0.1:"+strconv.Itoa(port))
			},
		},
	}
}

// signedPost builds a Pusher HTTP API request signed as the server SDKs do (protocol spec §8.1):
// HMAC-SHA256 over method, path and the sorted query with body_md5.
func signedPost(t *testing.T, origin, path, body string) *http.Request {
	t.Helper()
	sum := md5.Sum([]byte(body))
	query := "auth_key=" + appKey + "&auth_timestamp=" + strconv.FormatInt(time.Now().Unix(), 10) +
		"&auth_version=1.0&body_md5=" + hex.EncodeToString(sum[:])
	mac := hmac.New(sha256.New, []byte(appSecret))
	mac.Write([]byte("POST\n" + path + "\n" + query))
	req, err := http.NewRequest(http.MethodPost, origin+path+"?"+query+"&auth_signature="+hex.EncodeToString(mac.Sum(nil)), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return req
}

func repoRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		t.Fatalf("go env GOMOD: %v %s", err, out)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

func buildFrontdoor(t *testing.T, repo string) string {
	t.Helper()
	if bin := os.Getenv("FRONTDOOR_BIN"); bin != "" {
		return bin
	}
	bin := filepath.Join(t.TempDir(), "frontdoor")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/frontdoor")
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/frontdoor: %v\n%s", err, out)
	}
	return bin
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// proc is a child process whose output is kept for failure messages.
type proc struct {
	mu  sync.Mutex
	out bytes.Buffer
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *proc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// startFrontdoor runs the binary; it gets SIGTERM at cleanup (the graceful path) and SIGKILL if
// the test binary dies first.
func startFrontdoor(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{}
	cmd := exec.Command(bin, append([]string{"serve"}, args...)...)
	cmd.Stdout, cmd.Stderr = p, p
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	return p
}

// startChromium runs headless Chromium with a fresh profile and DevTools on a port it picks.
// Its process group is killed at cleanup (renderer and zygote included).
func startChromium(t *testing.T, bin, profile string, args ...string) *proc {
	t.Helper()
	p := &proc{}
	argv := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update",
		"--disable-sync", "--disable-extensions", "--user-data-dir=" + profile, "--remote-debugging-port=0",
	}, args...)
	cmd := exec.Command(bin, argv...)
	cmd.Stdout, cmd.Stderr = p, p
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	})
	return p
}
