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
// a precompressed .br/.zst/.gz sibling when the client accepts it, else the file compressed
// here (compress.go), and immutable caching for Vite's hashed build/assets/.
func (h *Handler) serveStatic(ctx *fasthttp.RequestCtx, rs *rootState, rel string, src staticSource) {
	ctype := mime.TypeByExtension(filepath.Ext(rel))
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	ctx.Response.Header.SetContentType(ctype)
	if strings.HasPrefix(rel, "build/assets/") {
		ctx.Response.Header.Set("Cache-Control", "public, max-age=31536000, immutable")
	}
	h.serveFile(ctx, src, rs, rel)
}

// serveFile answers with src, whose Content-Type is already set: validators, a single Range,
// and, when rs is not nil, a coding the client accepts: rel's precompressed sibling under rs,
// or src compressed here (and cached) when its type is worth it. Without rs (X-Sendfile
// downloads) the bytes go out as they are.
func (h *Handler) serveFile(ctx *fasthttp.RequestCtx, src staticSource, rs *rootState, rel string) {
	var etagBuf [40]byte
	etag := strconv.AppendInt(append(etagBuf[:0], '"'), src.size, 16)
	etag = strconv.AppendInt(append(etag, '-'), src.mod.UnixNano(), 16)
	etag = append(etag, '"')
	hdr := &ctx.Response.Header
	var lmBuf [32]byte
	hdr.SetBytesV("Last-Modified", src.mod.UTC().AppendFormat(lmBuf[:0], http.TimeFormat))
	hdr.Set("Accept-Ranges", "bytes")

	rangeHdr := ctx.Request.Header.Peek("Range")
	enc, onTheFly := encIdentity, false
	if rangeHdr == nil && rs != nil {
		compressible := h.compress != nil && compressibleType(hdr.ContentType())
		hdr.Add("Vary", "Accept-Encoding")
		a := parseAcceptEncoding(ctx.Request.Header.Peek("Accept-Encoding"))
		for _, e := range a.list[:a.n] {
			if sib, ok := openStatic(rs, rel+e.ext()); ok { // a precompressed sibling wins over compressing here
				src.close()
				src, enc = sib, e
				break
			}
		}
		if enc == encIdentity && compressible && a.n > 0 && src.size >= compressMinSize && src.size <= compressStaticMax {
			enc, onTheFly = a.best(), true
		}
	}
	identityETag := etag
	if enc != encIdentity {
		var encBuf [56]byte
		etag = appendETagSuffix(encBuf[:0], etag, enc)
		hdr.Set("Content-Encoding", enc.token())
	}
	hdr.SetBytesV("ETag", etag)
	if notModified(ctx, string(etag), src.mod) {
		src.close()
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		ctx.Response.SkipBody = true
		return
	}
	if onTheFly {
		if out, ok := h.compressStatic(compressKey{rs.real + "/" + rel, src.size, src.mod.UnixNano(), enc}, src); ok {
			src = staticSource{data: out, size: int64(len(out)), mod: src.mod}
		} else { // busy or unreadable: as it is
			hdr.Del("Content-Encoding")
			hdr.SetBytesV("ETag", identityETag)
		}
	}
	size := src.size
	if start, end, ok := parseRange(string(rangeHdr), size); ok {
		hdr.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end, size))
		if src.f == nil {
			ctx.SetStatusCode(fasthttp.StatusPartialContent)
			ctx.Response.SetBodyRaw(src.data[start : end+1])
			return
		}
		if _, err := src.f.Seek(start, 0); err != nil {
			src.close()
			hdr.Del("Content-Range")
			ctx.Error("Range Not Satisfiable", fasthttp.StatusRequestedRangeNotSatisfiable)
			return
		}
		ctx.SetStatusCode(fasthttp.StatusPartialContent)
		ctx.SetBodyStream(limitedFile{io.LimitReader(src.f, end-start+1), src.f}, int(end-start+1))
		return
	} else if rangeHdr != nil && start < 0 {
		src.close()
		hdr.Set("Content-Range", fmt.Sprintf("bytes */%d", size))
		ctx.Error("Range Not Satisfiable", fasthttp.StatusRequestedRangeNotSatisfiable)
		return
	}
	if ctx.IsHead() {
		src.close()
		hdr.SetContentLength(int(size))
		ctx.Response.SkipBody = true
		return
	}
	if src.f == nil {
		ctx.Response.SetBodyRaw(src.data) // shared, never written: the cache's bytes go out as they are
		return
	}
	ctx.SetBodyStream(src.f, int(size)) // fasthttp closes f after sending
}

// compressStatic returns src compressed, from the cache or compressed now, and closes src when
// it did. ok=false when every slot is compressing another file: then src goes out as it is.
func (h *Handler) compressStatic(k compressKey, src staticSource) ([]byte, bool) {
	c := h.compress
	if out, ok := c.cache.get(k); ok {
		src.close()
		return out, true
	}
	select {
	case c.slots <- struct{}{}:
		defer func() { <-c.slots }()
	default:
		return nil, false
	}
	data := src.data
	if src.f != nil {
		data = make([]byte, src.size)
		if _, err := io.ReadFull(src.f, data); err != nil {
			_, _ = src.f.Seek(0, io.SeekStart)
			return nil, false
		}
		src.close()
	}
	out := c.encode(nil, data, k.enc)
	c.cache.put(k, out)
	return out, true
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
