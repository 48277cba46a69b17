package proxy

import (
	"errors"
	"fmt"
	"io/fs"
	"mime"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/valyala/fasthttp"
)

// X-Sendfile and X-Accel-Redirect: PHP answers a download with a header naming the file instead
// of the bytes, and frontdoor sends the file from disk (Range, ETag, Last-Modified, 304), so a
// PHP worker is not held for the length of a download. Laravel's response()->download() and
// Symfony's BinaryFileResponse do it once trustXSendfileTypeHeader() is called and the request
// carries X-Sendfile-Type, which frontdoor sets when sendfile roots are configured (a client's
// own X-Sendfile-Type and X-Accel-Mapping are dropped with the forwarding headers).
//
//   - X-Sendfile: /abs/path — the path must lie inside one of Config.SendfileRoots.
//   - X-Accel-Redirect: /protected/a.pdf — Nginx's internal location: a root configured as
//     "/protected/=dir" maps the URI prefix to dir.
//
// Files are opened through an os.Root per allowed directory, so ".." and symlinks that lead out
// are refused at open time. A path outside every root, an escape, a directory: 500; a missing
// file: 404; either way logged (rate-limited) with the path, and nothing else is sent.

// sendfileRoot is one directory files may be sent from.
type sendfileRoot struct {
	prefix string   // X-Accel-Redirect URI prefix ("/protected/"), "" for X-Sendfile only
	dir    string   // absolute, as configured
	real   string   // symlinks resolved (PHP's realpath() names files this way)
	root   *os.Root // opened at real
}

// parseSendfileRoot splits "prefix=dir" or "dir"; relative dirs are taken from root.
func parseSendfileRoot(v, root string) (prefix, dir string, err error) {
	dir = v
	if p, d, ok := strings.Cut(v, "="); ok && strings.HasPrefix(p, "/") {
		prefix, dir = p, d
		if !strings.HasSuffix(prefix, "/") {
			prefix += "/"
		}
		if prefix == "/" || path.Clean(prefix)+"/" != prefix {
			return "", "", fmt.Errorf("sendfile_roots: invalid value %q: the location must be a clean path such as /protected/", v)
		}
	}
	if dir == "" {
		return "", "", fmt.Errorf("sendfile_roots: invalid value %q: want a directory, or /location/=directory for X-Accel-Redirect", v)
	}
	if !filepath.IsAbs(dir) {
		if root == "" {
			return "", "", fmt.Errorf("sendfile_roots: invalid value %q: a relative directory needs root, or give an absolute path", v)
		}
		dir = filepath.Join(root, dir)
	}
	return prefix, dir, nil
}

func openSendfileRoots(list []string, root string) ([]sendfileRoot, error) {
	var out []sendfileRoot
	for _, v := range list {
		prefix, dir, err := parseSendfileRoot(v, root)
		if err != nil {
			return nil, err
		}
		real, err := filepath.EvalSymlinks(dir)
		if err != nil {
			return nil, fmt.Errorf("sendfile_roots: %q: %w", v, err)
		}
		r, err := os.OpenRoot(real)
		if err != nil {
			return nil, fmt.Errorf("sendfile_roots: %q: %w", v, err)
		}
		out = append(out, sendfileRoot{prefix: prefix, dir: dir, real: real, root: r})
	}
	return out, nil
}

// errSendfileOutside is a path no configured root holds.
var errSendfileOutside = errors.New("not inside any --sendfile-root")

// mapSendfile finds the root holding an X-Sendfile path and the path relative to it.
func mapSendfile(p string, roots []sendfileRoot) (int, string, error) {
	if !filepath.IsAbs(p) || strings.IndexByte(p, 0) >= 0 || hasDotDot(p) {
		return -1, "", errSendfileOutside
	}
	for i, r := range roots {
		for _, base := range []string{r.real, r.dir} {
			if rel, err := filepath.Rel(base, p); err == nil && rel != "." && filepath.IsLocal(rel) {
				return i, rel, nil
			}
		}
	}
	return -1, "", errSendfileOutside
}

// mapAccelRedirect maps an X-Accel-Redirect URI through the roots' locations. The query is
// ignored; ".." segments are refused rather than cleaned away.
func mapAccelRedirect(uri string, roots []sendfileRoot) (int, string, error) {
	if i := strings.IndexByte(uri, '?'); i >= 0 {
		uri = uri[:i]
	}
	if !strings.HasPrefix(uri, "/") || strings.IndexByte(uri, 0) >= 0 || strings.IndexByte(uri, '\\') >= 0 || hasDotDot(uri) {
		return -1, "", errSendfileOutside
	}
	for i, r := range roots {
		if r.prefix == "" || !strings.HasPrefix(uri, r.prefix) {
			continue
		}
		rel := strings.TrimLeft(uri[len(r.prefix):], "/")
		if rel == "" || !filepath.IsLocal(rel) {
			return -1, "", errSendfileOutside
		}
		return i, rel, nil
	}
	return -1, "", errSendfileOutside
}

// hasDotDot reports a ".." path segment.
func hasDotDot(p string) bool {
	for seg := range strings.SplitSeq(filepath.ToSlash(p), "/") {
		if seg == ".." {
			return true
		}
	}
	return false
}

// sendfileTarget is the header PHP handed a file with, if any.
func sendfileTarget(h *fasthttp.ResponseHeader) (target string, accel, ok bool) {
	if v := peekFold(h, "X-Sendfile"); v != nil {
		return string(v), false, true
	}
	if v := peekFold(h, "X-Accel-Redirect"); v != nil {
		return string(v), true, true
	}
	return "", false, false
}

// sendfileDropped are PHP's response headers that do not go out with the file: the file
// brings its own length, validators and ranges, and the X-Sendfile/X-Accel-* instructions are
// for frontdoor.
func sendfileDropped(k []byte) bool {
	if len(k) >= len("X-Accel-") && asciiEqualFold(k[:len("X-Accel-")], "X-Accel-") {
		return true
	}
	for _, n := range []string{"X-Sendfile", "Content-Length", "Content-Type", "Content-Encoding", "Content-Range",
		"Accept-Ranges", "ETag", "Last-Modified", "Transfer-Encoding"} {
		if asciiEqualFold(k, n) {
			return true
		}
	}
	return false
}

// serveSendfile answers a PHP response that carries X-Sendfile or X-Accel-Redirect with the
// file, keeping PHP's other headers (Content-Disposition, Cache-Control, cookies) and its
// Content-Type when it set one. It reports whether it took the response over.
func (h *Handler) serveSendfile(ctx *fasthttp.RequestCtx, x *exchange) bool {
	resp := &ctx.Response
	target, accel, ok := sendfileTarget(&resp.Header)
	if !ok || h.sendfile == nil {
		return false
	}
	if resp.StatusCode() != fasthttp.StatusOK { // not a download: PHP's answer, without the instruction
		resp.Header.Del("X-Sendfile")
		resp.Header.Del("X-Accel-Redirect")
		return false
	}
	// PHP's body (normally empty) is dropped; a stream is closed now, and the exchange is
	// recorded once, for the file.
	if x.deferred {
		x.deferred, x.quiet = false, true
	}
	resp.ResetBody()
	x.quiet = false
	type kv struct{ k, v []byte }
	var kept []kv
	for k, v := range resp.Header.All() {
		if !sendfileDropped(k) && !asciiEqualFold(k, "X-Request-Id") {
			kept = append(kept, kv{append([]byte(nil), k...), append([]byte(nil), v...)})
		}
	}
	ctype := append([]byte(nil), peekFold(&resp.Header, "Content-Type")...)
	id := append([]byte(nil), resp.Header.Peek("X-Request-Id")...)
	resp.Reset()
	resp.Header.SetBytesV("X-Request-Id", id)

	var i int
	var rel string
	var err error
	if accel {
		i, rel, err = mapAccelRedirect(target, h.sendfile)
	} else {
		i, rel, err = mapSendfile(target, h.sendfile)
	}
	var src staticSource
	if err == nil {
		src, err = openSendfile(h.sendfile[i].root, rel)
	}
	if err != nil {
		status := fasthttp.StatusInternalServerError
		if errors.Is(err, fs.ErrNotExist) {
			status = fasthttp.StatusNotFound
		}
		h.observer.Load().ObserveUpstreamError(x.upstream, "sendfile")
		if dropped, ok := h.refusals.Allow(); ok {
			header := "X-Sendfile"
			if accel {
				header = "X-Accel-Redirect"
			}
			ev := h.log.Error().Err(err).Str("request_id", x.reqID).Str("header", header).Str("file", capString(target, 1024)).Int("status", status)
			if dropped > 0 {
				ev = ev.Uint64("suppressed", dropped)
			}
			ev.Msg("PHP handed over a file that cannot be sent")
		}
		h.errorPage(ctx, status, fasthttp.StatusMessage(status))
		return true
	}
	for _, p := range kept {
		resp.Header.AddBytesKV(p.k, p.v)
	}
	if len(ctype) > 0 {
		resp.Header.SetContentTypeBytes(ctype)
	} else if t := mime.TypeByExtension(filepath.Ext(rel)); t != "" {
		resp.Header.SetContentType(t)
	} else {
		resp.Header.SetContentType("application/octet-stream")
	}
	h.serveFile(ctx, src, nil, "")
	return true
}

// openSendfile opens a regular file through root; a directory or other non-file is an error.
func openSendfile(root *os.Root, rel string) (staticSource, error) {
	f, err := root.Open(rel)
	if err != nil {
		return staticSource{}, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return staticSource{}, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return staticSource{}, fmt.Errorf("%s: not a regular file", rel)
	}
	return staticSource{f: f, size: st.Size(), mod: st.ModTime()}, nil
}
