package proxy

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// The cache answers from memory within fileRecheck and notices edits, new files and deletions
// after it; large files and non-files are remembered as such; unknown paths cannot grow it past
// its bound.
func TestFileCacheRevalidates(t *testing.T) {
	old := fileRecheck
	fileRecheck = 50 * time.Millisecond
	t.Cleanup(func() { fileRecheck = old })
	dir := t.TempDir()
	write := func(name, body string, mod time.Time) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mod, mod); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Now().Add(-time.Hour)
	write("app.css", "body{}", t0)
	if err := os.Mkdir(filepath.Join(dir, "img"), 0o755); err != nil {
		t.Fatal(err)
	}
	write("big.bin", string(make([]byte, smallFileMax+1)), t0)
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	c := &fileCache{}

	if cf := c.lookup(root, "app.css"); cf.kind != smallFile || string(cf.body) != "body{}" {
		t.Fatalf("app.css: %+v", cf)
	}
	if cf := c.lookup(root, "img"); cf.kind != noFile {
		t.Fatal("a directory is not a static file")
	}
	if cf := c.lookup(root, "big.bin"); cf.kind != largeFile || cf.body != nil {
		t.Fatal("a large file is opened per request, not kept")
	}
	if cf := c.lookup(root, "later.js"); cf.kind != noFile {
		t.Fatal("absent file")
	}

	// Edited (same size, new mtime), created, deleted: served from memory until the recheck,
	// then as they are on disk.
	write("app.css", "body{x", t0.Add(time.Minute))
	write("later.js", "ok()", t0)
	if err := os.Remove(filepath.Join(dir, "big.bin")); err != nil {
		t.Fatal(err)
	}
	if cf := c.lookup(root, "app.css"); string(cf.body) != "body{}" {
		t.Fatal("revalidated before fileRecheck: the cache saves nothing")
	}
	time.Sleep(2 * fileRecheck)
	if cf := c.lookup(root, "app.css"); string(cf.body) != "body{x" {
		t.Fatalf("edit not noticed: %q", cf.body)
	}
	if cf := c.lookup(root, "later.js"); cf.kind != smallFile || string(cf.body) != "ok()" {
		t.Fatal("new file not noticed")
	}
	if cf := c.lookup(root, "big.bin"); cf.kind != noFile {
		t.Fatal("deletion not noticed")
	}

	// A scanner's unknown paths stop being remembered at the bound.
	for i := range cacheMaxPaths + 100 {
		c.lookup(root, "nope/"+strconv.Itoa(i))
	}
	if n := c.entries.Load(); n != cacheMaxPaths {
		t.Fatalf("%d entries, bound %d", n, cacheMaxPaths)
	}
}
