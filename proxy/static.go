package proxy

import (
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// staticFile resolves a request path to a regular file under root, or "" when the request is not
// for a static file (then it goes to PHP). It never resolves dotfiles other than /.well-known/,
// PHP source, or anything that leaves root after cleaning or through a symlink.
func staticFile(root, reqPath string) (string, os.FileInfo) {
	if root == "" || strings.IndexByte(reqPath, 0) >= 0 {
		return "", nil
	}
	clean := path.Clean("/" + reqPath)
	for _, seg := range strings.Split(clean, "/") {
		if strings.HasPrefix(seg, ".") && seg != ".well-known" {
			return "", nil
		}
	}
	if strings.HasSuffix(strings.ToLower(clean), ".php") {
		return "", nil
	}
	rel := strings.TrimPrefix(clean, "/")
	if rel == "" || !filepath.IsLocal(rel) {
		return "", nil
	}
	full := filepath.Join(root, filepath.FromSlash(rel))
	real, err := filepath.EvalSymlinks(full)
	if err != nil {
		return "", nil
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil || (real != realRoot && !strings.HasPrefix(real, realRoot+string(filepath.Separator))) {
		return "", nil // a symlink that leaves the root
	}
	st, err := os.Stat(real)
	if err != nil || !st.Mode().IsRegular() {
		return "", nil
	}
	return real, st
}

// hiddenPath reports paths Nginx's Laravel block denies outright: dotfiles such as .env and .git.
func hiddenPath(reqPath string) bool {
	for _, seg := range strings.Split(path.Clean("/"+reqPath), "/") {
		if strings.HasPrefix(seg, ".") && seg != ".well-known" {
			return true
		}
	}
	return false
}

// serveStatic answers with the file: validators (ETag, Last-Modified, 304), a single Range,
// precompressed .br/.gz siblings when the client accepts them, and immutable caching for Vite's
// hashed build/assets/.
func serveStatic(ctx *fasthttp.RequestCtx, file string, st os.FileInfo, reqPath string) {
	etag := fmt.Sprintf(`"%x-%x"`, st.Size(), st.ModTime().UnixNano())
	ctype := mime.TypeByExtension(filepath.Ext(file))
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	h := &ctx.Response.Header
	h.Set("ETag", etag)
	h.Set("Last-Modified", st.ModTime().UTC().Format(http.TimeFormat))
	h.Set("Accept-Ranges", "bytes")
	h.SetContentType(ctype)
	if strings.HasPrefix(path.Clean(reqPath), "/build/assets/") {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	}
	if notModified(ctx, etag, st.ModTime()) {
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		ctx.Response.SkipBody = true
		return
	}
	// Precompressed siblings: app.js.br / app.js.gz beside app.js.
	serveFile, size := file, st.Size()
	if ctx.Request.Header.Peek("Range") == nil {
		ae := string(ctx.Request.Header.Peek("Accept-Encoding"))
		for _, enc := range []struct{ token, ext string }{{"br", ".br"}, {"gzip", ".gz"}} {
			if !acceptsEncoding(ae, enc.token) {
				continue
			}
			if cst, err := os.Stat(file + enc.ext); err == nil && cst.Mode().IsRegular() {
				serveFile, size = file+enc.ext, cst.Size()
				h.Set("Content-Encoding", enc.token)
				break
			}
		}
		h.Add("Vary", "Accept-Encoding")
	}
	f, err := os.Open(serveFile)
	if err != nil {
		ctx.Error("Not Found", fasthttp.StatusNotFound)
		return
	}
	if start, end, ok := parseRange(string(ctx.Request.Header.Peek("Range")), size); ok {
		if _, err := f.Seek(start, 0); err != nil {
			f.Close()
			ctx.Error("Range Not Satisfiable", fasthttp.StatusRequestedRangeNotSatisfiable)
			return
		}
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end, size))
		ctx.SetStatusCode(fasthttp.StatusPartialContent)
		ctx.SetBodyStream(limitedFile{io.LimitReader(f, end-start+1), f}, int(end-start+1))
		return
	} else if ctx.Request.Header.Peek("Range") != nil && start < 0 {
		f.Close()
		h.Set("Content-Range", fmt.Sprintf("bytes */%d", size))
		ctx.Error("Range Not Satisfiable", fasthttp.StatusRequestedRangeNotSatisfiable)
		return
	}
	if ctx.IsHead() {
		f.Close()
		h.SetContentLength(int(size))
		ctx.Response.SkipBody = true
		return
	}
	ctx.SetBodyStream(f, int(size)) // fasthttp closes f after sending
}

func notModified(ctx *fasthttp.RequestCtx, etag string, mod time.Time) bool {
	if inm := string(ctx.Request.Header.Peek("If-None-Match")); inm != "" {
		for _, t := range strings.Split(inm, ",") {
			t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
			if t == etag || t == "*" {
				return true
			}
		}
		return false
	}
	if ims := string(ctx.Request.Header.Peek("If-Modified-Since")); ims != "" {
		if t, err := http.ParseTime(ims); err == nil {
			return !mod.Truncate(time.Second).After(t)
		}
	}
	return false
}

func acceptsEncoding(header, token string) bool {
	for _, part := range strings.Split(header, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(name), token) {
			return !strings.Contains(strings.ReplaceAll(params, " ", ""), "q=0") || strings.Contains(params, "q=0.")
		}
	}
	return false
}

// parseRange handles one "bytes=a-b" range. ok=false with start<0 means unsatisfiable; ok=false
// with start=0 means no (usable) Range header: serve the whole file, as RFC 9110 allows.
func parseRange(h string, size int64) (start, end int64, ok bool) {
	spec, found := strings.CutPrefix(h, "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false
	}
	a, b, _ := strings.Cut(spec, "-")
	var err error
	switch {
	case a == "":
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n <= 0 {
			return -1, 0, false
		}
		start, end = max(size-n, 0), size-1
	default:
		if start, err = strconv.ParseInt(a, 10, 64); err != nil {
			return 0, 0, false
		}
		end = size - 1
		if b != "" {
			if end, err = strconv.ParseInt(b, 10, 64); err != nil {
				return 0, 0, false
			}
			end = min(end, size-1)
		}
	}
	if start >= size || start > end {
		return -1, 0, false
	}
	return start, end, true
}

// limitedFile streams part of an open file and closes the file when fasthttp is done with it.
type limitedFile struct {
	io.Reader
	io.Closer
}
