package proxy

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// deployTree lays out releases/N/public/build/assets/app-<hash>.js for each N and current ->
// releases/<first>, Envoyer's and Deployer's layout, and returns the base directory.
func deployTree(t *testing.T, chunks map[string]string) string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for rel, name := range chunks {
		assets := filepath.Join(dir, "releases", rel, "public", "build", "assets")
		if err := os.MkdirAll(assets, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(assets, name), []byte("chunk of release "+rel), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(dir, "releases", "1"), filepath.Join(dir, "current")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// switchRelease moves current to releases/rel the way deploy tools do: a new link renamed over it.
func switchRelease(t *testing.T, dir, rel string) {
	t.Helper()
	tmp := filepath.Join(dir, "current.tmp")
	if err := os.Symlink(filepath.Join(dir, "releases", rel), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "current")); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond for up to ten seconds (a failure bound, not a timing assertion).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10s: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// copied reports whether the newest previous release's copy is complete.
func (r *releases) copied0() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.list) > 0 && r.list[0].copy != nil
}

// age moves every previous release's switch time d into the past.
func (r *releases) age(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, o := range r.list {
		o.retired = o.retired.Add(-d)
	}
}

func phpCounter(t *testing.T) (string, *atomic.Int64) {
	var hits atomic.Int64
	up, _ := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(404)
		w.Write([]byte("from php"))
	})
	return up, &hits
}

// TestPreviousReleaseAssets: after current moves from release 1 to 2, release 1's hashed chunk
// is still served with its own bytes; after releases/1 is deleted, from the copy taken at the
// switch; after the window, 404. A hashed asset no release has is 404 without PHP, while other
// missing paths under build/ still go to PHP.
func TestPreviousReleaseAssets(t *testing.T) {
	dir := deployTree(t, map[string]string{"1": "app-BxK3o9aQ.js", "2": "app-4f3a2b1c.js"})
	up, phpHits := phpCounter(t)
	h, err := New(Config{Root: filepath.Join(dir, "current", "public"), Upstreams: []string{up}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	front := serveFront(t, h)
	old, cur := front+"/build/assets/app-BxK3o9aQ.js", front+"/build/assets/app-4f3a2b1c.js"
	if resp, body := get(t, old, nil); resp.StatusCode != 200 || body != "chunk of release 1" {
		t.Fatalf("before the switch: %d %q", resp.StatusCode, body)
	}
	switchRelease(t, dir, "2")
	waitFor(t, "release 2 served", func() bool { resp, _ := get(t, cur, nil); return resp.StatusCode == 200 })

	resp, body := get(t, old, nil)
	if resp.StatusCode != 200 || body != "chunk of release 1" || !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") {
		t.Fatalf("old chunk after the switch: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	waitFor(t, "the copy of release 1", h.releases.copied0)
	if err := os.RemoveAll(filepath.Join(dir, "releases", "1")); err != nil {
		t.Fatal(err)
	}
	if resp, body := get(t, old, nil); resp.StatusCode != 200 || body != "chunk of release 1" {
		t.Fatalf("old chunk after its release was deleted: %d %q", resp.StatusCode, body)
	}
	if n := h.PreviousReleaseAssetsServed(); n != 2 {
		t.Fatalf("previous-release assets served: %d, want 2", n)
	}
	if resp, _ := get(t, front+"/build/assets/app-Zz9_-x0Q.js", nil); resp.StatusCode != 404 || phpHits.Load() != 0 {
		t.Fatalf("a hashed asset no release has: %d, PHP asked %d times", resp.StatusCode, phpHits.Load())
	}
	if resp, body := get(t, front+"/build/manifest.json", nil); resp.StatusCode != 404 || body != "from php" {
		t.Fatalf("an unhashed build path: %d %q (want PHP's answer)", resp.StatusCode, body)
	}
	h.releases.age(time.Hour)
	if resp, _ := get(t, old, nil); resp.StatusCode != 404 {
		t.Fatalf("old chunk after the window: %d", resp.StatusCode)
	}
	if phpHits.Load() != 1 {
		t.Fatalf("PHP asked %d times, want once (the manifest)", phpHits.Load())
	}
	h.releases.mu.Lock()
	state, left := h.releases.stateDir, len(h.releases.list)
	h.releases.mu.Unlock()
	if entries, _ := os.ReadDir(state); left != 0 || len(entries) != 0 {
		t.Fatalf("after the window: %d releases kept, copies %v", left, entries)
	}
}

// TestPreviousReleasesBounded: with PreviousReleases 1 only the release just replaced is kept;
// with a copy limit below the chunk's size nothing is copied, so deleting the release ends it.
func TestPreviousReleasesBounded(t *testing.T) {
	dir := deployTree(t, map[string]string{"1": "a-11111111.js", "2": "b-22222222.js", "3": "c-33333333.js"})
	up, _ := phpCounter(t)
	h, err := New(Config{Root: filepath.Join(dir, "current", "public"), Upstreams: []string{up},
		PreviousReleases: 1, PreviousReleasesCopyLimit: 4}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	front := serveFront(t, h)
	for _, rel := range []string{"2", "3"} {
		switchRelease(t, dir, rel)
		name := map[string]string{"2": "b-22222222.js", "3": "c-33333333.js"}[rel]
		waitFor(t, "release "+rel+" served", func() bool {
			resp, _ := get(t, front+"/build/assets/"+name, nil)
			return resp.StatusCode == 200
		})
	}
	if resp, _ := get(t, front+"/build/assets/a-11111111.js", nil); resp.StatusCode != 404 {
		t.Fatalf("two releases back with PreviousReleases 1: %d", resp.StatusCode)
	}
	if resp, body := get(t, front+"/build/assets/b-22222222.js", nil); resp.StatusCode != 200 || body != "chunk of release 2" {
		t.Fatalf("the release just replaced: %d %q", resp.StatusCode, body)
	}
	h.releases.copies.Wait()
	if h.releases.copied0() {
		t.Fatal("copied beyond the copy limit")
	}
	if err := os.RemoveAll(filepath.Join(dir, "releases", "2")); err != nil {
		t.Fatal(err)
	}
	if resp, _ := get(t, front+"/build/assets/b-22222222.js", nil); resp.StatusCode != 404 {
		t.Fatalf("deleted release without a copy: %d", resp.StatusCode)
	}
}

// FuzzHashedAsset: the rule never panics, never matches outside the build directory, and
// matches Vite's names.
func FuzzHashedAsset(f *testing.F) {
	for _, s := range []string{"build/assets/app-BxK3o9aQ.js", "build/assets/index-4f3a2b1c.css", "build/assets/app.js",
		"build/assets/app-BxK3o9aQ.js.map", "build/x-12345678", "buildx/a-12345678.js", "build/-12345678.js", "build/a-1234567.js", "", "build/", "build/a-Bx-3o9aQ.js"} {
		f.Add(s)
	}
	for _, want := range []string{"build/assets/app-BxK3o9aQ.js", "build/assets/index-4f3a2b1c.css", "build/assets/app-Bx-3o_aQ.js.br"} {
		if !hashedAsset(want, "build") {
			f.Fatalf("%s: not hashed", want)
		}
	}
	for _, not := range []string{"build/assets/app.js", "build/manifest.json", "assets/app-BxK3o9aQ.js", "buildx/app-BxK3o9aQ.js", "build/app-BxK3o9a.js", "build/app-BxK3o9a!.js"} {
		if hashedAsset(not, "build") {
			f.Fatalf("%s: hashed", not)
		}
	}
	f.Fuzz(func(t *testing.T, rel string) {
		if hashedAsset(rel, "build") && !strings.HasPrefix(rel, "build/") {
			t.Fatalf("%q outside build/", rel)
		}
	})
}
