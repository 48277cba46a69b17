package proxy

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// laravelTree builds app/public with `php artisan storage:link`'s public/storage ->
// ../storage/app/public, plus symlinks that must never be followed, and returns app/.
func laravelTree(t *testing.T) string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	app := filepath.Join(dir, "app")
	for _, d := range []string{"public", "storage/app/public/avatars"} {
		if err := os.MkdirAll(filepath.Join(app, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(rel, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(app, rel), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, rel string) {
		t.Helper()
		if err := os.Symlink(target, filepath.Join(app, rel)); err != nil {
			t.Fatal(err)
		}
	}
	write(".env", "APP_KEY=never-served-secret")
	write("storage/app/public/avatars/a.jpg", "AVATAR")
	write("storage/app/public/.secret", "hidden-in-storage")
	write("storage/app/public/shell.php", "<?php echo 'ran';")
	link("../storage/app/public", "public/storage") // what storage:link creates
	link("/etc", "public/etc")                      // out of every allowed directory
	link("../.env", "public/env.txt")               // the app's secrets, beside public/
	link("/etc/passwd", "storage/app/public/passwd.txt")
	link(".secret", "storage/app/public/innocent.txt")
	link("shell.php", "storage/app/public/shell.txt")
	return app
}

// TestStorageLinkIsServed: public/storage -> ../storage/app/public is served as static files
// (Laravel's storage:link), while symlinks to anything outside the allowed directories (/etc,
// the app's .env, a link inside storage that leads out again) are not, nor dotfiles or PHP
// reached through a link.
func TestStorageLinkIsServed(t *testing.T) {
	app := laravelTree(t)
	up, _ := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(404)
		w.Write([]byte("from php"))
	})
	front := startFront(t, Config{Root: filepath.Join(app, "public"), Upstreams: []string{up}})
	for range 2 { // the second time from the file cache
		resp, body := get(t, front+"/storage/avatars/a.jpg", nil)
		if resp.StatusCode != 200 || body != "AVATAR" || resp.Header.Get("Content-Type") != "image/jpeg" {
			t.Fatalf("storage link: %d %q %v", resp.StatusCode, body, resp.Header)
		}
	}
	for _, p := range []string{"/etc/passwd", "/etc/hostname", "/env.txt", "/storage/passwd.txt", "/storage/innocent.txt",
		"/storage/shell.txt", "/storage/.secret", "/storage/../../.env", "/storage/avatars/missing.jpg"} {
		resp, body := get(t, front+p, nil)
		// PHP's answer, or a 404 for a path never served (dotfiles): never the file.
		if resp.StatusCode == 200 || body != "from php" && resp.StatusCode != 404 || strings.Contains(body, "root:") ||
			strings.Contains(body, "secret") || strings.Contains(body, "<?php") {
			t.Errorf("%s: %d %q", p, resp.StatusCode, body)
		}
	}
}

// TestSymlinkRootsConfigured: SymlinkRoots replaces the default list: a link into a configured
// directory is followed, the storage link no longer is.
func TestSymlinkRootsConfigured(t *testing.T) {
	app := laravelTree(t)
	media := filepath.Join(filepath.Dir(app), "media")
	if err := os.Mkdir(media, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(media, "clip.txt"), []byte("CLIP"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(media, filepath.Join(app, "public", "media")); err != nil {
		t.Fatal(err)
	}
	up, _ := startUpstream(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("from php")) })
	h, err := New(Config{Root: filepath.Join(app, "public"), Upstreams: []string{up}, SymlinkRoots: []string{media}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	front := serveFront(t, h)
	if resp, b := do(t, mustReq(t, "GET", front+"/media/clip.txt", nil)); resp.StatusCode != 200 || string(b) != "CLIP" {
		t.Errorf("configured link root: %d %q", resp.StatusCode, b)
	}
	if _, b := do(t, mustReq(t, "GET", front+"/storage/avatars/a.jpg", nil)); string(b) != "from php" {
		t.Errorf("storage link followed though the list does not name it: %q", b)
	}
}
