package proxy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// sendfileApp is an app directory beside the test public/: storage/app with a report, a
// private area for X-Accel-Redirect, a directory, and a symlink that leads out to /etc/passwd.
func sendfileApp(t *testing.T) (storage string) {
	t.Helper()
	storage = filepath.Join(t.TempDir(), "storage", "app")
	for _, d := range []string{"private", "dir"} {
		if err := os.MkdirAll(filepath.Join(storage, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(storage, "report.txt"), []byte("0123456789 the report\n"), 0o644)
	os.WriteFile(filepath.Join(storage, "private", "invoice.pdf"), []byte("%PDF-1.4 invoice"), 0o644)
	if err := os.Symlink("/etc/passwd", filepath.Join(storage, "passwd-link")); err != nil {
		t.Fatal(err)
	}
	return storage
}

// TestSendfileWithPHPFPM: a real php-fpm answers downloads with X-Sendfile / X-Accel-Redirect
// and frontdoor sends the file with Range, validators and PHP's other headers; every path
// outside the allowed directories, a symlink out, a directory or a missing file gets an error
// page, is logged with the path, and no byte of any other file is sent.
func TestSendfileWithPHPFPM(t *testing.T) {
	fpm := startPHPFPM(t, 2)
	storage := sendfileApp(t)
	logs := &lockedBuffer{}
	h, err := New(Config{Root: root(t), Upstreams: []string{fpm.unixURL()},
		SendfileRoots: []string{storage, "/protected/=" + filepath.Join(storage, "private")}}, zerolog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	front := serveFront(t, h)
	get := func(query string, hdr map[string]string) (*http.Response, string) {
		req := mustReq(t, "GET", front+"/sendfile?"+query, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, b := do(t, req)
		return resp, string(b)
	}
	report := filepath.Join(storage, "report.txt")

	resp, body := get("type=text/plain&path="+url.QueryEscape(report), nil)
	if resp.StatusCode != 200 || body != "0123456789 the report\n" {
		t.Fatalf("X-Sendfile: %d %q", resp.StatusCode, body)
	}
	for k, want := range map[string]string{"Content-Disposition": `attachment; filename="report.txt"`, "Cache-Control": "private, max-age=60",
		"Accept-Ranges": "bytes", "X-Sendfile": "", "Content-Length": "22"} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") { // PHP adds its charset
		t.Errorf("Content-Type %q, want PHP's text/plain", ct)
	}
	etag := resp.Header.Get("ETag")
	if etag == "" || etag == `"php-etag"` || resp.Header.Get("Last-Modified") == "" {
		t.Errorf("validators: ETag %s Last-Modified %q", etag, resp.Header.Get("Last-Modified"))
	}
	if resp, body = get("path="+url.QueryEscape(report), map[string]string{"Range": "bytes=0-3"}); resp.StatusCode != 206 || body != "0123" {
		t.Errorf("Range: %d %q", resp.StatusCode, body)
	}
	if resp, _ = get("path="+url.QueryEscape(report), map[string]string{"If-None-Match": etag}); resp.StatusCode != 304 {
		t.Errorf("If-None-Match: %d", resp.StatusCode)
	}
	if resp, body = get("accel=1&path=/protected/invoice.pdf", nil); resp.StatusCode != 200 || body != "%PDF-1.4 invoice" ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") { // PHP's default Content-Type, kept as Nginx keeps it
		t.Errorf("X-Accel-Redirect: %d %q %q", resp.StatusCode, body, resp.Header.Get("Content-Type"))
	}
	if resp, body = get("body=1&path="+url.QueryEscape(report), nil); resp.StatusCode != 200 || body != "0123456789 the report\n" {
		t.Errorf("a streamed PHP body beside X-Sendfile: %d %.40q", resp.StatusCode, body)
	}
	if resp, body = get("status=403&path="+url.QueryEscape(report), nil); resp.StatusCode != 403 || strings.Contains(body, "the report") || resp.Header.Get("X-Sendfile") != "" {
		t.Errorf("not a 200: %d %q %v", resp.StatusCode, body, resp.Header)
	}

	for _, tc := range []struct {
		name, query string
		status      int
	}{
		{"accel ../../etc/passwd", "accel=1&path=" + url.QueryEscape("/protected/../../etc/passwd"), 500},
		{"accel ../ to a sibling", "accel=1&path=" + url.QueryEscape("/protected/../report.txt"), 500},
		{"accel unmapped location", "accel=1&path=/etc/passwd", 500},
		{"sendfile /etc/passwd", "path=/etc/passwd", 500},
		{"sendfile dot-dot out", "path=" + url.QueryEscape(storage+"/../../../../../../etc/passwd"), 500},
		{"sendfile relative", "path=report.txt", 500},
		{"symlink out", "path=" + url.QueryEscape(filepath.Join(storage, "passwd-link")), 500},
		{"directory", "path=" + url.QueryEscape(filepath.Join(storage, "dir")), 500},
		{"missing", "path=" + url.QueryEscape(filepath.Join(storage, "nope.txt")), 404},
		{"accel missing", "accel=1&path=/protected/nope.pdf", 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := get(tc.query, nil)
			if resp.StatusCode != tc.status || strings.Contains(body, "root:") || strings.Contains(body, "the report") ||
				resp.Header.Get("Content-Disposition") != "" {
				t.Fatalf("%d %q %v", resp.StatusCode, body, resp.Header)
			}
			path, _ := url.ParseQuery(tc.query)
			if !strings.Contains(logs.String(), fmt.Sprintf("%q", path.Get("path"))[1:len(fmt.Sprintf("%q", path.Get("path")))-1]) {
				t.Fatalf("the log does not name %q:\n%s", path.Get("path"), logs)
			}
		})
	}
}

// TestSendfileOff: without sendfile roots PHP is not offered X-Sendfile, and a client's own
// X-Sendfile-Type (or X-Accel-Mapping) never reaches it.
func TestSendfileOff(t *testing.T) {
	fpm := startPHPFPM(t, 1)
	h, err := New(Config{Root: root(t), Upstreams: []string{fpm.unixURL()}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	front := serveFront(t, h)
	req := mustReq(t, "GET", front+"/sendfile?path=/etc/passwd", nil)
	req.Header.Set("X-Sendfile-Type", "X-Sendfile")
	req.Header.Set("X-Accel-Mapping", "/=/")
	if resp, b := do(t, req); string(b) != "no X-Sendfile-Type" || resp.Header.Get("X-Sendfile") != "" {
		t.Fatalf("%q %v", b, resp.Header)
	}
	req = mustReq(t, "GET", front+"/", nil)
	req.Header.Set("X-Accel-Mapping", "/=/")
	resp, b := do(t, req)
	if s := decodeSaw(t, resp, b); s.Server["HTTP_X_ACCEL_MAPPING"] != "" || s.Server["HTTP_X_SENDFILE_TYPE"] != "" {
		t.Fatalf("client headers reached PHP: %v", s.Server)
	}
}

// TestSendfileHTTPUpstream: an HTTP upstream (Octane) is offered X-Sendfile-Type and its
// X-Sendfile answer is served from disk.
func TestSendfileHTTPUpstream(t *testing.T) {
	storage := sendfileApp(t)
	up := startGoUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Sendfile-Type") != "X-Sendfile" {
			_ = json.NewEncoder(w).Encode(r.Header)
			return
		}
		w.Header().Set("X-Sendfile", filepath.Join(storage, "report.txt"))
		w.Header().Set("Content-Disposition", "attachment")
	}))
	h, err := New(Config{Upstreams: []string{up}, SendfileRoots: []string{storage}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	front := serveFront(t, h)
	resp, b := do(t, mustReq(t, "GET", front+"/download", nil))
	if resp.StatusCode != 200 || string(b) != "0123456789 the report\n" || resp.Header.Get("Content-Disposition") != "attachment" ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("%d %q %v", resp.StatusCode, b, resp.Header)
	}
}

func TestSendfileRootsValidate(t *testing.T) {
	for _, bad := range []string{"=", "/=/srv", "/a/../b/=/srv", "relative/without/root"} {
		c := Config{SendfileRoots: []string{bad}}
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "sendfile_roots") {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if _, err := New(Config{SendfileRoots: []string{"/does/not/exist"}}, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "sendfile_roots") {
		t.Errorf("missing directory: %v", err)
	}
}

func TestMapAccelRedirect(t *testing.T) {
	roots := []sendfileRoot{{prefix: "/protected/"}, {prefix: ""}, {prefix: "/media/"}}
	for uri, want := range map[string]string{
		"/protected/a.pdf":         "0:a.pdf",
		"/protected/sub/a.pdf?x=1": "0:sub/a.pdf",
		"/protected//a.pdf":        "0:a.pdf",
		"/media/v.mp4":             "2:v.mp4",
		"/protected/../etc/passwd": "refused",
		"/protected/a/../../x":     "refused",
		"/protected/":              "refused",
		"/protected":               "refused",
		"/other/a":                 "refused",
		"protected/a":              "refused",
		"/protected/a\\..\\..\\b":  "refused",
		"/protected/\x00":          "refused",
		"/protected/..%2f..%2fetc": "0:..%2f..%2fetc", // not decoded: a file of that odd name, inside the root
		"/protected/./a":           "0:a",
	} {
		i, rel, err := mapAccelRedirect(uri, roots)
		got := "refused"
		if err == nil {
			got = fmt.Sprintf("%d:%s", i, filepath.ToSlash(filepath.Clean(rel)))
		}
		if got != want {
			t.Errorf("%q: %s, want %s", uri, got, want)
		}
	}
}

func FuzzMapAccelRedirect(f *testing.F) {
	for _, s := range []string{"/protected/a.pdf", "/protected/../x", "/protected//a?b", "/media/./v", "/protected/a/..", "//protected/a"} {
		f.Add(s)
	}
	roots := []sendfileRoot{{prefix: "/protected/"}, {prefix: "/media/"}}
	f.Fuzz(func(t *testing.T, uri string) {
		i, rel, err := mapAccelRedirect(uri, roots)
		if err != nil {
			return
		}
		if i < 0 || i >= len(roots) || !strings.HasPrefix(uri, roots[i].prefix) || !filepath.IsLocal(rel) || hasDotDot(rel) {
			t.Fatalf("%q mapped to root %d, %q", uri, i, rel)
		}
	})
}

func FuzzMapSendfile(f *testing.F) {
	for _, s := range []string{"/srv/app/storage/app/a.txt", "/srv/app/storage/app/../../.env", "/etc/passwd", "relative", "/srv/app/storage/appendix"} {
		f.Add(s)
	}
	roots := []sendfileRoot{{dir: "/srv/app/storage/app", real: "/srv/shared/storage/app"}}
	f.Fuzz(func(t *testing.T, p string) {
		_, rel, err := mapSendfile(p, roots)
		if err != nil {
			return
		}
		clean := filepath.Clean(p) // the same file however it is spelled
		if !filepath.IsLocal(rel) || rel == "." || !(strings.HasPrefix(clean, "/srv/app/storage/app/") || strings.HasPrefix(clean, "/srv/shared/storage/app/")) {
			t.Fatalf("%q mapped to %q", p, rel)
		}
	})
}
