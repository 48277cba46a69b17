package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"

	"github.com/valyala/fasthttp"
)

// Request bodies are read in full before an upstream is involved, as Nginx does by default
// (proxy_request_buffering, and always for FastCGI): a php-fpm worker is a scarce, pooled
// thing, and a client that sends a Content-Length and then trickles or stalls would otherwise
// hold one for as long as it likes. The body goes to memory up to bodyMemory, then to an
// unlinked temporary file; bodyBudget bounds what all requests hold at once.

const (
	// bodyMemory is how much of one request body is held in memory before the rest spills to a
	// temporary file (Nginx's client_body_buffer_size is 8–16 KiB; forms and JSON fit in far less
	// than this, uploads go to disk).
	bodyMemory = 1 << 20
	// bodyMemoryTotal bounds the memory all buffered bodies hold together; beyond it, bodies go
	// straight to temporary files.
	bodyMemoryTotal = 64 << 20
)

var (
	errBodyTooLarge = errors.New("request body over max_body")
	errBodyBudget   = errors.New("request bodies being buffered are over body_buffer_limit")
)

// bodyBudget is what buffered request bodies hold across all requests: limit bytes in all
// (memory and temporary files), of which at most bodyMemoryTotal in memory.
type bodyBudget struct {
	limit int64
	used  atomic.Int64
	mem   atomic.Int64
}

// take reserves n bytes, or reports that the budget is spent.
func (b *bodyBudget) take(n int64) bool {
	if b.used.Add(n) > b.limit {
		b.used.Add(-n)
		return false
	}
	return true
}

// requestBody is a body ready to go upstream: in memory, or in a file of known length.
type requestBody struct {
	mem    []byte    // the whole body, when it is in memory
	stream io.Reader // else this many bytes...
	length int64     // ...in total
	file   *os.File  // the unlinked temporary file behind stream, closed by close

	budget        *bodyBudget
	held, memHeld int64 // given back to budget by close
}

// size is the body's length in bytes.
func (b *requestBody) size() int64 {
	if b.stream != nil {
		return b.length
	}
	return int64(len(b.mem))
}

// close releases the temporary file and the budget. It is safe to call more than once.
func (b *requestBody) close() {
	if b.file != nil {
		b.file.Close()
		b.file = nil
	}
	if b.budget != nil {
		b.budget.used.Add(-b.held)
		b.budget.mem.Add(-b.memHeld)
		b.held, b.memHeld = 0, 0
	}
}

// budgetReader counts what is read into the body against the budget.
type budgetReader struct {
	r    io.Reader
	body *requestBody
}

func (r *budgetReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		if !r.body.budget.take(int64(n)) {
			return 0, errBodyBudget
		}
		r.body.held += int64(n)
	}
	return n, err
}

// clientBodyReader reads the client's body with a deadline of its own: timeout is the longest
// silence allowed between two reads (Nginx's client_body_timeout). A client that stalls gets
// 408 and never reaches PHP.
type clientBodyReader struct {
	r    io.Reader
	conn net.Conn
	dl   lazyDeadline
}

func (c *clientBodyReader) Read(p []byte) (int, error) {
	if at, move := c.dl.next(); move && c.conn != nil {
		if err := c.conn.SetReadDeadline(at); err != nil {
			return 0, err
		}
	}
	return c.r.Read(p)
}

// bufferBody reads the whole request body before any upstream connection is taken: in memory
// when fasthttp already holds it, else through spool. The body fasthttp holds is described in
// inline (the exchange's own), so the usual request allocates nothing here.
func (h *Handler) bufferBody(ctx *fasthttp.RequestCtx, inline *requestBody) (*requestBody, error) {
	s := ctx.RequestBodyStream()
	if s == nil {
		*inline = requestBody{mem: ctx.Request.Body()}
		return inline, nil
	}
	r := &clientBodyReader{r: s, conn: ctx.Conn(), dl: lazyDeadline{d: h.cfg.BodyTimeout}}
	return spool(r, h.cfg.MaxBody, &h.bodies)
}

// spool reads a body to its end: in memory up to bodyMemory, then into an unlinked temporary
// file. Above maxBody: errBodyTooLarge; past the budget: errBodyBudget. Read errors are the
// client's (clientError).
func spool(r io.Reader, maxBody int64, budget *bodyBudget) (*requestBody, error) {
	body := &requestBody{budget: budget}
	memCap := min(bodyMemory, maxBody)
	if budget.mem.Add(memCap) > bodyMemoryTotal {
		budget.mem.Add(-memCap)
		memCap = 0 // memory is spoken for: this body goes to disk from its first byte
	} else {
		body.memHeld = memCap
	}
	br := &budgetReader{r: r, body: body}
	var mem bytes.Buffer
	n, err := io.Copy(&mem, io.LimitReader(br, memCap+1))
	if err != nil {
		body.close()
		return nil, readError(err)
	}
	if n <= memCap {
		budget.mem.Add(n - memCap) // keep only what the body uses
		body.memHeld = n
		body.mem = mem.Bytes()
		return body, nil
	}
	budget.mem.Add(-body.memHeld)
	body.memHeld = 0
	if n > maxBody {
		body.close()
		return nil, errBodyTooLarge
	}
	f, err := os.CreateTemp("", "frontdoor-body-*")
	if err != nil {
		body.close()
		return nil, err
	}
	os.Remove(f.Name()) // the open descriptor keeps it; nothing is left behind on a crash
	body.file = f
	if _, err := f.Write(mem.Bytes()); err != nil {
		body.close()
		return nil, err
	}
	m, err := io.Copy(f, io.LimitReader(br, maxBody-n+1))
	if err != nil {
		body.close()
		return nil, readError(err)
	}
	if n+m > maxBody {
		body.close()
		return nil, errBodyTooLarge
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		body.close()
		return nil, err
	}
	// Only Read: an HTTP client handed an io.Closer would close the file under us.
	body.stream, body.length = struct{ io.Reader }{f}, n+m
	return body, nil
}

// readError marks a failure reading the client's body as the client's, except the budget's.
func readError(err error) error {
	if errors.Is(err, errBodyBudget) || errors.Is(err, errBodyTooLarge) {
		return err
	}
	return clientError{err}
}
