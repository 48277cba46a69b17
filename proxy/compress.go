package proxy

import (
	"bytes"
	"io"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	brotli "github.com/molecule-man/go-brrr"
	"github.com/valyala/fasthttp"
)

// Response compression, as Nginx's gzip module and Caddy's encode directive do it: br, zstd or
// gzip, chosen from the client's Accept-Encoding, for text-like types above compressMinSize.
// Never for a Range request or a 206 (the range would be of the encoded bytes), a response with
// Cache-Control: no-transform (RFC 9110 §7.7), one PHP already encoded, or text/event-stream
// (SSE must reach the client event by event, and a compressor holds bytes back).
//
// Whole responses (PHP's answers of up to fcgiInlineBody, static files) are compressed in one
// go with fasthttp's helpers; static results are cached (compressCache). A response that streams
// is compressed as it streams: each piece the upstream sends is compressed and flushed on its
// own, so a flush() in PHP still reaches the client at once, at the cost of some ratio. The
// number of streams being compressed at once is bounded (maxCompressStreams): beyond it a
// stream goes out uncompressed rather than pinning another encoder's memory.

// encoding is a content coding frontdoor produces.
type encoding uint8

const (
	encIdentity encoding = iota
	encBr
	encZstd
	encGzip
)

// token is the Content-Encoding value; ext the precompressed sibling's suffix.
func (e encoding) token() string { return [...]string{"", "br", "zstd", "gzip"}[e] }
func (e encoding) ext() string   { return [...]string{"", ".br", ".zst", ".gz"}[e] }

// compressMinSize is the smallest body worth compressing (Caddy's encode minimum_length is 512,
// Nginx's gzip_min_length 20; below ~1 KiB the framing eats most of the gain).
const compressMinSize = 1 << 10

// compressStaticMax is the largest static file compressed on the fly (and then cached); larger
// files go out as they are unless a precompressed sibling exists (vite-plugin-compression).
const compressStaticMax = 4 << 20

// maxCompressStreams bounds the streamed responses compressed at once (each holds an encoder of
// a few hundred KiB).
const maxCompressStreams = 128

// DefaultCompressLevel is Config.CompressLevel's default: gzip 5, brotli 5, zstd default.
const DefaultCompressLevel = 5

// accepted is a client's acceptable codings, best first.
type accepted struct {
	list [3]encoding
	n    int
}

// parseAcceptEncoding reads Accept-Encoding (RFC 9110 §12.5.3): codings with q-values, "*" for
// any coding not named, q=0 for "not acceptable". The codings frontdoor makes come back ordered
// by q, ties in frontdoor's preference (br, zstd, gzip). identity is always acceptable to us:
// a client that refuses it (identity;q=0) and accepts nothing we make gets identity anyway,
// which RFC 9110 permits instead of a 406. A malformed element is skipped.
func parseAcceptEncoding(h []byte) accepted {
	q := [4]int{-1, -1, -1, -1} // by encoding; -1 = not named
	star := -1
	for elem := range bytes.SplitSeq(h, []byte(",")) {
		name, params, _ := bytes.Cut(elem, []byte(";"))
		name = bytes.TrimSpace(name)
		if len(name) == 0 {
			continue
		}
		v, ok := qValue(params)
		if !ok {
			continue
		}
		var e encoding
		switch {
		case asciiEqualFold(name, "br"):
			e = encBr
		case asciiEqualFold(name, "zstd"):
			e = encZstd
		case asciiEqualFold(name, "gzip"), asciiEqualFold(name, "x-gzip"):
			e = encGzip
		case len(name) == 1 && name[0] == '*':
			star = max(star, v)
			continue
		default:
			continue
		}
		q[e] = max(q[e], v)
	}
	var a accepted
	for _, e := range []encoding{encBr, encZstd, encGzip} {
		v := q[e]
		if v < 0 {
			v = star
		}
		if v <= 0 {
			continue
		}
		q[e] = v
		i := a.n
		for i > 0 && q[a.list[i-1]] < v { // insertion by q, stable for equal q
			a.list[i] = a.list[i-1]
			i--
		}
		a.list[i] = e
		a.n++
	}
	return a
}

// qValue finds q= among an element's parameters, in thousandths: 1000 when absent, ok=false
// when malformed (RFC 9110 §12.4.2: 0 to 1 with up to three decimals).
func qValue(params []byte) (int, bool) {
	for p := range bytes.SplitSeq(params, []byte(";")) {
		k, v, found := bytes.Cut(bytes.TrimSpace(p), []byte("="))
		if !found || !asciiEqualFold(bytes.TrimSpace(k), "q") {
			continue
		}
		v = bytes.TrimSpace(v)
		if len(v) == 0 || len(v) > 5 || v[0] != '0' && v[0] != '1' {
			return 0, false
		}
		n := int(v[0]-'0') * 1000
		if len(v) > 1 {
			if v[1] != '.' {
				return 0, false
			}
			scale := 100
			for _, c := range v[2:] {
				if c < '0' || c > '9' {
					return 0, false
				}
				n += int(c-'0') * scale
				scale /= 10
			}
		}
		if n > 1000 {
			return 0, false
		}
		return n, true
	}
	return 1000, true
}

// best is the coding to use, or identity.
func (a accepted) best() encoding {
	if a.n == 0 {
		return encIdentity
	}
	return a.list[0]
}

// compressibleType reports a media type worth compressing: text, JSON, JavaScript, XML, SVG,
// and fonts that are not compressed already (TrueType, OpenType, EOT; WOFF and WOFF2 are).
// text/event-stream is not: it must stream unbuffered.
func compressibleType(ct []byte) bool {
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	t := bytes.TrimSpace(ct)
	switch {
	case asciiEqualFold(t, "text/event-stream"):
		return false
	case len(t) > 5 && asciiEqualFold(t[:5], "text/"),
		len(t) > 5 && (asciiEqualFold(t[len(t)-5:], "+json") || asciiEqualFold(t[len(t)-4:], "+xml")):
		return true
	}
	for _, c := range compressibleTypes {
		if asciiEqualFold(t, c) {
			return true
		}
	}
	return false
}

// compressibleTypes are the media types outside text/*, +json and +xml worth compressing.
var compressibleTypes = []string{"application/json", "application/javascript", "application/x-javascript",
	"application/ecmascript", "application/xml", "application/wasm", "application/x-ndjson",
	"image/x-icon", "image/vnd.microsoft.icon", "image/bmp",
	"font/ttf", "font/otf", "font/collection", "application/x-font-ttf", "application/x-font-otf",
	"application/font-sfnt", "application/vnd.ms-fontobject"}

// compressor holds the compression settings and the encoders being reused.
type compressor struct {
	level   int // 1..9
	streams atomic.Int64
	slots   chan struct{} // static files being compressed at once
	pools   [4]sync.Pool  // streaming encoders by encoding
	cache   compressCache
}

// levelFor maps Config.CompressLevel (1 fastest … 9 smallest, gzip's scale) to each encoder's.
func (c *compressor) levelFor(e encoding) int {
	switch e {
	case encBr: // brotli 0–11; 1–9 taken as they are
		return c.level
	case encZstd: // fasthttp's four zstd speeds
		switch {
		case c.level <= 2:
			return fasthttp.CompressZstdBestSpeed
		case c.level <= 6:
			return fasthttp.CompressZstdDefault
		case c.level <= 8:
			return fasthttp.CompressZstdSpeedBetter
		}
		return fasthttp.CompressZstdBestCompression
	}
	return c.level
}

// encode compresses a whole body with fasthttp's helpers.
func (c *compressor) encode(dst, src []byte, e encoding) []byte {
	switch e {
	case encBr:
		return fasthttp.AppendBrotliBytesLevel(dst, src, c.levelFor(e))
	case encZstd:
		return fasthttp.AppendZstdBytesLevel(dst, src, c.levelFor(e))
	case encGzip:
		return fasthttp.AppendGzipBytesLevel(dst, src, c.levelFor(e))
	}
	return append(dst, src...)
}

// streamEncoder is what the three encoders share for streaming.
type streamEncoder interface {
	io.Writer
	Flush() error
	Close() error
	Reset(io.Writer)
}

// zstdEncoder adapts zstd.Encoder, whose Reset has no error to report here.
type zstdEncoder struct{ *zstd.Encoder }

func (z zstdEncoder) Reset(w io.Writer) { z.Encoder.Reset(w) }

func (c *compressor) streamEncoder(e encoding, w io.Writer) streamEncoder {
	if v := c.pools[e].Get(); v != nil {
		enc := v.(streamEncoder)
		enc.Reset(w)
		return enc
	}
	switch e {
	case encBr:
		// A 256 KiB window instead of 4 MiB: a streamed page needs no more, and each stream
		// holds one.
		bw, _ := brotli.NewWriterOptions(w, c.levelFor(e), brotli.WriterOptions{LGWin: 18})
		return bw
	case encZstd:
		zw, _ := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.EncoderLevel(c.levelFor(e))),
			zstd.WithWindowSize(256<<10), zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))
		return zstdEncoder{zw}
	default:
		gw, _ := gzip.NewWriterLevel(w, c.levelFor(e))
		return gw
	}
}

// skipEncoding reports a response that must go out as it is, whatever the client accepts.
func skipEncoding(ctx *fasthttp.RequestCtx) bool {
	resp := &ctx.Response
	status := resp.StatusCode()
	return ctx.IsHead() || status < 200 || status == fasthttp.StatusNoContent || status == fasthttp.StatusNotModified ||
		status == fasthttp.StatusPartialContent || ctx.Request.Header.Peek("Range") != nil ||
		len(resp.Header.ContentEncoding()) > 0 || noTransform(peekFold(&resp.Header, "Cache-Control"))
}

// peekFold finds a response header whatever its case: an HTTP upstream's headers keep the case
// it sent (the client does not normalize them), e.g. Go's "Etag" or Node's "cache-control".
func peekFold(h *fasthttp.ResponseHeader, name string) []byte {
	if v := h.Peek(name); v != nil {
		return v
	}
	for k, v := range h.All() {
		if asciiEqualFold(k, name) {
			return v
		}
	}
	return nil
}

func noTransform(cc []byte) bool {
	for d := range bytes.SplitSeq(cc, []byte(",")) {
		if asciiEqualFold(bytes.TrimSpace(d), "no-transform") {
			return true
		}
	}
	return false
}

// negotiate decides a PHP response's coding, and sets Vary on every compressible response: its
// body depends on Accept-Encoding even when this client got identity. length is the body's
// size, -1 when unknown (a stream).
func (h *Handler) negotiate(ctx *fasthttp.RequestCtx, length int) encoding {
	if h.compress == nil || skipEncoding(ctx) || !compressibleType(ctx.Response.Header.ContentType()) {
		return encIdentity
	}
	addVary(&ctx.Response.Header)
	if length >= 0 && length < compressMinSize {
		return encIdentity
	}
	return parseAcceptEncoding(ctx.Request.Header.Peek("Accept-Encoding")).best()
}

// addVary adds Accept-Encoding to Vary unless it is there already.
func addVary(h *fasthttp.ResponseHeader) {
	for k, v := range h.All() {
		if !asciiEqualFold(k, "Vary") {
			continue
		}
		for t := range bytes.SplitSeq(v, []byte(",")) {
			if t = bytes.TrimSpace(t); asciiEqualFold(t, "Accept-Encoding") || len(t) == 1 && t[0] == '*' {
				return
			}
		}
	}
	h.Add("Vary", "Accept-Encoding")
}

// setEncoded marks the response as encoded with e: Content-Encoding, and the encoding in the
// ETag ("abc" → "abc-br") so a cache never answers an identity request with the encoded bytes
// or the other way round.
func setEncoded(h *fasthttp.ResponseHeader, e encoding) {
	h.Set("Content-Encoding", e.token())
	tagETag(h, e)
}

// tagETag adds the coding to a strong or weak ETag, whatever case the upstream named it in.
func tagETag(h *fasthttp.ResponseHeader, e encoding) {
	etag := peekFold(h, "ETag")
	if len(etag) < 2 || etag[len(etag)-1] != '"' {
		return
	}
	tagged := appendETagSuffix(nil, etag, e)
	var named []string
	for k := range h.All() {
		if asciiEqualFold(k, "ETag") {
			named = append(named, string(k))
		}
	}
	for _, k := range named {
		h.Del(k)
	}
	h.SetBytesV("ETag", tagged)
}

func appendETagSuffix(dst, etag []byte, e encoding) []byte {
	dst = append(dst, etag[:len(etag)-1]...)
	return append(append(append(dst, '-'), e.token()...), '"')
}

// stripETagSuffixes takes the coding suffixes setEncoded adds off the request's If-None-Match,
// so PHP compares the tags it made ("v1", not "v1-br") and can still answer 304 (Apache's
// mod_deflate does the same). It returns the coding taken off, for restoreETagSuffix.
func (h *Handler) stripETagSuffixes(ctx *fasthttp.RequestCtx) encoding {
	inm := ctx.Request.Header.Peek("If-None-Match")
	if h.compress == nil || len(inm) == 0 {
		return encIdentity
	}
	var out []byte
	found := encIdentity
	for i, tag := range bytes.Split(inm, []byte(",")) {
		tag = bytes.TrimSpace(tag)
		for _, e := range []encoding{encBr, encZstd, encGzip} {
			suffix := etagSuffixes[e]
			if len(tag) > len(suffix)+1 && string(tag[len(tag)-len(suffix):]) == suffix {
				tag = append(append([]byte(nil), tag[:len(tag)-len(suffix)]...), '"')
				found = e
				break
			}
		}
		if i > 0 {
			out = append(out, ", "...)
		}
		out = append(out, tag...)
	}
	if found != encIdentity {
		ctx.Request.Header.SetBytesV("If-None-Match", out)
	}
	return found
}

var etagSuffixes = [...]string{"", `-br"`, `-zstd"`, `-gzip"`}

// restoreETagSuffix puts the coding back on the ETag of PHP's 304, the tag the client holds,
// with the Vary the full response had.
func restoreETagSuffix(ctx *fasthttp.RequestCtx, e encoding) {
	if e == encIdentity || ctx.Response.StatusCode() != fasthttp.StatusNotModified {
		return
	}
	tagETag(&ctx.Response.Header, e)
	addVary(&ctx.Response.Header)
}

// compressBody compresses a complete in-memory PHP response when it should be.
func (h *Handler) compressBody(ctx *fasthttp.RequestCtx) {
	if ctx.Response.IsBodyStream() {
		return
	}
	body := ctx.Response.Body()
	e := h.negotiate(ctx, len(body))
	if e == encIdentity {
		return
	}
	out := h.compress.encode(make([]byte, 0, len(body)/3+64), body, e)
	ctx.Response.SetBodyRaw(out)
	setEncoded(&ctx.Response.Header, e)
}

// setBodyStream is how upstreams hand a streamed response body to fasthttp: compressed as it
// streams when it should be and an encoder is free, else as it is. cl is the body's length or -1.
func (h *Handler) setBodyStream(ctx *fasthttp.RequestCtx, body io.ReadCloser, cl int) {
	if _, _, ok := sendfileTarget(&ctx.Response.Header); ok && h.sendfile != nil { // serveSendfile replaces it
		ctx.Response.SetBodyStream(body, cl)
		return
	}
	e := h.negotiate(ctx, cl)
	if e == encIdentity || h.compress.streams.Add(1) > maxCompressStreams {
		if e != encIdentity {
			h.compress.streams.Add(-1)
		}
		ctx.Response.SetBodyStream(body, cl)
		return
	}
	setEncoded(&ctx.Response.Header, e)
	ctx.Response.SetBodyStream(&encodedBody{c: h.compress, e: e, src: body}, -1)
}

// encodedBody compresses a body stream piece by piece: every Read of the source is compressed
// and flushed on its own, so what the upstream flushed reaches the client without waiting for
// more.
type encodedBody struct {
	c   *compressor
	e   encoding
	src io.ReadCloser
	enc streamEncoder
	out bytes.Buffer
	in  []byte
	eof bool
	err error
}

// SupportsBodyWriteTo lets fasthttp frame each compressed piece as one chunk.
func (b *encodedBody) SupportsBodyWriteTo() bool { return true }

// fill compresses the next piece of the source into out.
func (b *encodedBody) fill() error {
	if b.enc == nil {
		b.enc = b.c.streamEncoder(b.e, &b.out)
		b.in = make([]byte, fcgiChunk)
	}
	n, err := b.src.Read(b.in)
	if n > 0 {
		if _, werr := b.enc.Write(b.in[:n]); werr != nil {
			return werr
		}
	}
	switch {
	case err == io.EOF:
		b.eof = true
		return b.enc.Close()
	case err != nil:
		return err
	case n > 0:
		return b.enc.Flush()
	}
	return nil
}

func (b *encodedBody) Read(p []byte) (int, error) {
	for b.out.Len() == 0 {
		if b.eof {
			return 0, io.EOF
		}
		if b.err != nil {
			return 0, b.err
		}
		if b.err = b.fill(); b.err != nil {
			return 0, b.err
		}
	}
	return b.out.Read(p)
}

// WriteTo writes each compressed piece with one Write, which fasthttp flushes to the client.
func (b *encodedBody) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if b.out.Len() > 0 {
			n, err := w.Write(b.out.Bytes())
			total += int64(n)
			b.out.Reset()
			if err != nil {
				return total, err
			}
		}
		if b.eof {
			return total, nil
		}
		if b.err != nil {
			return total, b.err
		}
		b.err = b.fill()
	}
}

// Close closes the source (which ends the exchange) and gives the encoder back.
func (b *encodedBody) Close() error {
	err := b.src.Close()
	if b.enc != nil {
		if b.eof {
			b.enc.Reset(io.Discard)
			b.c.pools[b.e].Put(b.enc)
		}
		b.enc = nil
	}
	b.c.streams.Add(-1)
	return err
}

// compressCache keeps compressed static files, so a file is compressed once per change, not per
// request: keyed by path, size, modification time and coding, bounded in bytes. When full, an
// arbitrary entry makes room (map order): simple, and a hot file is soon back.
type compressCache struct {
	mu    sync.Mutex
	m     map[compressKey][]byte
	bytes int
}

type compressKey struct {
	path string // the root's real path and the file's, so a deploy's new release never matches
	size int64
	mod  int64
	enc  encoding
}

const compressCacheBytes = 32 << 20

func (c *compressCache) get(k compressKey) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.m[k]
	return b, ok
}

func (c *compressCache) put(k compressKey, b []byte) {
	if len(b) > compressCacheBytes/4 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[compressKey][]byte)
	}
	if old, ok := c.m[k]; ok {
		c.bytes -= len(old)
		delete(c.m, k)
	}
	for victim, vb := range c.m {
		if c.bytes+len(b) <= compressCacheBytes {
			break
		}
		delete(c.m, victim)
		c.bytes -= len(vb)
	}
	c.m[k] = b
	c.bytes += len(b)
}
