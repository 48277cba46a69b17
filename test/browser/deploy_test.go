//go:build linux

package browser

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/frontdoorhq/frontdoor/tls/pebbletest"
)

// A tab opened before a deploy imports a lazy chunk of its own build after the deploy: frontdoor
// still has it from the previous release, so the import succeeds (behind a server that only
// knows the current release it fails with "Failed to fetch dynamically imported module").
func TestBrowserLazyChunkAfterDeploy(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	need(t, "chromium", "apt-get install -y --no-install-recommends chromium", err == nil)
	repo := repoRoot(t)
	bin := buildFrontdoor(t, repo)

	// releases/N/public as Vite builds them: the page loads its entry chunk, which imports
	// another chunk only when asked. Release 2 has different hashes, as a real rebuild would.
	dir := t.TempDir()
	release := func(n, entry, lazy string) {
		assets := filepath.Join(dir, "releases", n, "public", "build", "assets")
		if err := os.MkdirAll(assets, 0o755); err != nil {
			t.Fatal(err)
		}
		files := map[string]string{
			filepath.Join(assets, "..", "..", "page.html"): `<!doctype html><title>deploy</title><script type="module" src="/build/assets/` + entry + `"></script>`,
			filepath.Join(assets, entry): `window.__ready = true;
window.__load = () => import("./` + lazy + `").then(m => { window.__result = m.value; }, e => { window.__result = "error: " + e.message; });`,
			filepath.Join(assets, lazy):                                `export const value = "lazy chunk of release ` + n + `";`,
			filepath.Join(dir, "releases", n, "public", "version.txt"): n,
		}
		for p, body := range files {
			if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	release("1", "app-Ab3dE_9z.js", "lazy-Qx7-kP2m.js")
	release("2", "app-Zz81aB0c.js", "lazy-Mm4tR6yU.js")
	current := filepath.Join(dir, "current")
	if err := os.Symlink(filepath.Join(dir, "releases", "1"), current); err != nil {
		t.Fatal(err)
	}

	port := strconv.Itoa(pebbletest.FreePort(t))
	origin := "http://127.0.0.1:" + port
	fd := startFrontdoor(t, bin, "--listen", "127.0.0.1:"+port, "--admin", "off", "--env-file", "", "--log-format", "json",
		"--root", filepath.Join(current, "public"),
		// Nothing answers there: a request that reaches PHP fails, as the chunk would without frontdoor's help.
		"--upstream", "http://127.0.0.1:"+strconv.Itoa(pebbletest.FreePort(t)))
	version := func() string {
		resp, err := http.Get(origin + "/version.txt")
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	ctx := context.Background()
	if !pebbletest.WaitFor(ctx, pageTimeout, func() bool { return version() == "1" }) {
		t.Fatalf("release 1 not served\nfrontdoor:\n%s", fd.log())
	}

	profile := t.TempDir()
	browser := startChromium(t, chromium, profile, origin+"/page.html")
	dt := attachPage(t, ctx, profile, "/page.html", browser.log)
	defer dt.close()
	if !pebbletest.WaitFor(ctx, pageTimeout, func() bool { var ok bool; _ = dt.eval("window.__ready === true", &ok); return ok }) {
		t.Fatalf("release 1's entry chunk never ran\nchromium:\n%s", browser.log())
	}

	// The deploy: current moves to release 2 while the tab stays open.
	tmp := filepath.Join(dir, "current.tmp")
	if err := os.Symlink(filepath.Join(dir, "releases", "2"), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, current); err != nil {
		t.Fatal(err)
	}
	if !pebbletest.WaitFor(ctx, pageTimeout, func() bool { return version() == "2" }) {
		t.Fatalf("release 2 not served after the switch\nfrontdoor:\n%s", fd.log())
	}

	if err := dt.eval("void window.__load()", nil); err != nil {
		t.Fatal(err)
	}
	var result string
	if !pebbletest.WaitFor(ctx, pageTimeout, func() bool { _ = dt.eval("window.__result", &result); return result != "" }) {
		t.Fatalf("the lazy import never settled\nchromium:\n%s", browser.log())
	}
	if result != "lazy chunk of release 1" {
		t.Fatalf("lazy import after the deploy: %q\nfrontdoor:\n%s", result, fd.log())
	}
}
