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

// staticRel cleans a request path into the path relative to root that may name a static file,
// or reports that it may not: never dotfiles other than /.well-known/, PHP source, NUL bytes, or
// anything outside root (os.Root refuses ".." and symlinks that leave it at open time too, so
// there is no window between a check and the open).
func staticRel(reqPath string) (string, bool) {
	if strings.IndexByte(reqPath, 0) >= 0 {
		return "", false
	}
	clean := path.Clean("/" + reqPath)
	if hasDotSegment(clean) || hasSuffixFold(clean, ".php") {
		return "", false
	}
	rel := clean[1:]
	if rel == "" || !filepath.IsLocal(rel) {
		return "", false
	}
	return rel, true
}

// staticFile opens the regular file a request path names under root, or returns nil when the
// request is not for a static file (then it goes to PHP). rel is the cleaned path relative to root.
func staticFile(root *os.Root, reqPath string) (rel string, f *os.File, st os.FileInfo) {
	rel, ok := staticRel(reqPath)
	if root == nil || !ok {
		return "", nil, nil
	}
	f, err := root.Open(rel)
	if err != nil {
		return "", nil, nil
	}
	st, err = f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		f.Close()
		return "", nil, nil
	}
	return rel, f, st
}

// staticSource is the bytes of a static file: in memory (the file cache) or an open file.
type staticSource struct {
	data []byte   // when f is nil
	f    *os.File // closed by whoever ends up not streaming it
	size int64
	mod  time.Time
}

func (s staticSource) close() {
	if s.f != nil {
		s.f.Close()
	}
}

// openStatic finds rel under rs: from the file cache when it is small, else opened. ok=false when
// it is not a static file.
func openStatic(rs *rootState, rel string) (staticSource, bool) {
	if rs.files != nil {
		switch cf := rs.files.lookup(rs, rel); cf.kind {
		case noFile:
			return staticSource{}, false
		case smallFile:
			return staticSource{data: cf.body, size: cf.size, mod: cf.mod}, true
		}
	}
	f, err := rs.Open(rel)
	if err != nil {
		return staticSource{}, false
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		f.Close()
		return staticSource{}, false
	}
	return staticSource{f: f, size: st.Size(), mod: st.ModTime()}, true
}

// hasDotSegment reports a path segment starting with "." other than .well-known (RFC 8615).
func hasDotSegment(clean string) bool {
	for i := 0; i < len(clean); i++ {
		if clean[i] == '.' && (i == 0 || clean[i-1] == '/') && !strings.HasPrefix(clean[i:], ".well-known/") && clean[i:] != ".well-known" {
			return true
		}
	}
	return false
}

func hasSuffixFold(s, suffix string) bool {
	return len(s) >= len(suffix) && strings.EqualFold(s[len(s)-len(suffix):], suffix)
}

// hiddenPath reports paths Nginx's Laravel block denies outright: dotfiles such as .env and .git.
func hiddenPath(reqPath string) bool {
	return hasDotSegment(path.Clean("/" + reqPath))
}

// serveStatic answers with the file: validators (ETag, Last-Modified, 304), a single Range,
// precompressed .br/.gz siblings when the client accepts them, and immutable caching for Vite's
// hashed build/assets/.
func serveStatic(ctx *fasthttp.RequestCtx, rs *rootState, rel string, src staticSource) {
	var etagBuf [40]byte
	etag := strconv.AppendInt(append(etagBuf[:0], '"'), src.size, 16)
	etag = strconv.AppendInt(append(etag, '-'), src.mod.UnixNano(), 16)
	etag = append(etag, '"')
	ctype := mime.TypeByExtension(filepath.Ext(rel))
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	h := &ctx.Response.Header
	h.SetBytesV("ETag", etag)
	var lmBuf [32]byte
	h.SetBytesV("Last-Modified", src.mod.UTC().AppendFormat(lmBuf[:0], http.TimeFormat))
	h.Set("Accept-Ranges", "bytes")
	h.SetContentType(ctype)
	if strings.HasPrefix(rel, "build/assets/") {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	}
	if notModified(ctx, string(etag), src.mod) {
		src.close()
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		ctx.Response.SkipBody = true
		return
	}
	// Precompressed siblings: app.js.br / app.js.gz beside app.js.
	rangeHdr := ctx.Request.Header.Peek("Range")
	if rangeHdr == nil {
		ae := string(ctx.Request.Header.Peek("Accept-Encoding"))
		for _, enc := range []struct{ token, ext string }{{"br", ".br"}, {"gzip", ".gz"}} {
			if ae == "" || !acceptsEncoding(ae, enc.token) {
				continue
			}
			if sib, ok := openStatic(rs, rel+enc.ext); ok {
				src.close()
				src = sib
				h.Set("Content-Encoding", enc.token)
				break
			}
		}
		h.Add("Vary", "Accept-Encoding")
	}
	size := src.size
	if start, end, ok := parseRange(string(rangeHdr), size); ok {
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end, size))
		if src.f == nil {
			ctx.SetStatusCode(fasthttp.StatusPartialContent)
			ctx.Response.SetBodyRaw(src.data[start : end+1])
			return
		}
		if _, err := src.f.Seek(start, 0); err != nil {
			src.close()
			h.Del("Content-Range")
			ctx.Error("Range Not Satisfiable", fasthttp.StatusRequestedRangeNotSatisfiable)
			return
		}
		ctx.SetStatusCode(fasthttp.StatusPartialContent)
		ctx.SetBodyStream(limitedFile{io.LimitReader(src.f, end-start+1), src.f}, int(end-start+1))
		return
	} else if rangeHdr != nil && start < 0 {
		src.close()
		h.Set("Content-Range", fmt.Sprintf("bytes */%d", size))
		ctx.Error("Range Not Satisfiable", fasthttp.StatusRequestedRangeNotSatisfiable)
		return
	}
	if ctx.IsHead() {
		src.close()
		h.SetContentLength(int(size))
		ctx.Response.SkipBody = true
		return
	}
	if src.f == nil {
		ctx.Response.SetBodyRaw(src.data) // shared, never written: the cache's bytes go out as they are
		return
	}
	ctx.SetBodyStream(src.f, int(size)) // fasthttp closes f after sending
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
