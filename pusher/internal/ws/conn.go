package ws

import (
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Handler receives what a Conn reads. Both methods run on the conn's read goroutine, except
// OnClose, which may run on the goroutine that finished writing the close frame.
type Handler interface {
	// OnMessage gets one complete text message; payload is valid only during the call.
	OnMessage(payload []byte)
	// OnClose is called exactly once, when the connection is gone for any reason, with the close
	// code that ended it (sent or received; 1006 when the TCP connection simply dropped).
	OnClose(code int, reason string)
}

// Options bound one connection's resources.
type Options struct {
	MaxMessageSize int      // largest inbound message; zero means 64 KiB
	MaxQueueBytes  int      // send queue bound in bytes; zero means 1 MiB
	MaxQueueFrames int      // send queue bound in frames; zero means 4096
	OverflowFrames [][]byte // written, best effort, before the 4100 close when the queue overflows

	// Preface is raw bytes written before any frame: the 101 response when the HTTP server was
	// told not to write it (fasthttp's HijackSetNoResponse), so that it and First leave in one
	// write instead of two. Without Preface or First, Adopt queues nothing.
	Preface []byte
	// First are frames queued at once, right behind Preface (connection_established).
	First [][]byte
	// ReaderFree says that nothing but the hijacked conn reads fasthttp's buffered reader (the
	// upgrade request had no body stream): Adopt may then give the reader back to fasthttp's
	// pool instead of leaving it to the GC (reclaim.go).
	ReaderFree bool
}

// Errors Send returns.
var (
	ErrClosed    = errors.New("ws: connection closed")
	ErrQueueFull = errors.New("ws: send queue full; connection closed as a slow consumer")
)

// CloseOverCapacity is the Pusher close code for a slow consumer: reconnect after backing off
// (pusher-protocol.md §4, 4100).
const CloseOverCapacity = 4100

// ReasonSlowConsumer is the close reason OnClose reports for a conn closed because its send
// queue overflowed, so the handler can tell it from a client that closed with 4100 itself.
const ReasonSlowConsumer = "Over capacity: the client is not reading fast enough"

// closeLinger bounds how long a closing conn waits for the client's close reply, and how long the
// final frames may take to write.
const closeLinger = 3 * time.Second

// Conn is one upgraded WebSocket connection.
type Conn struct {
	nc      net.Conn        // the raw connection: *net.TCPConn, *tls.Conn, ...
	rc      syscall.RawConn // non-nil for TCP: non-blocking writev, and reads that hold no buffer while idle
	h       Handler
	f       *Flusher
	maxMsg  int
	lastAct atomic.Int64

	// The send queue's bounds (Options.MaxQueueBytes, MaxQueueFrames) and the frames a conn
	// over either gets before it is closed as a slow consumer (Options.OverflowFrames).
	maxQueueBytes  int
	maxQueueFrames int
	overflowFrames [][]byte

	mu        sync.Mutex
	queue     [][]byte  // frames waiting; queue[0] may be a tail of a partly written frame
	qbuf      [2][]byte // backing array for short queues, so Send does not allocate
	queued    int       // bytes in queue
	scheduled bool      // handed to a flusher or a blocking writer
	inPass    bool      // a readiness pass is running: it writes what is queued when it ends (endPass)
	closing   bool      // close frame queued: Send refuses, the fd closes after the flush
	closeCode int
	closeWhy  string
	closed    bool // fd closed
	peerClose bool // the client's close frame arrived
	preface   bool // queue[0] is Options.Preface, not yet handed to a writer: abort keeps it

	closeOnce sync.Once

	connPoll                 // the read driver's state: poller_linux.go, or poller_portable.go
	pollRC   syscall.RawConn // the TCP socket a poller would watch (under TLS, not the one written)
	base     *TLSBase        // set when nc is a tls.Conn over a TLSBase: reads go through TLS
}

// hijacked is fasthttp's hijacked connection: its Read goes through fasthttp's buffered reader
// (Server.ReadBufferSize), UnsafeConn is the socket underneath.
type hijacked interface {
	net.Conn
	UnsafeConn() net.Conn
}

// Adopt takes over an upgraded connection and starts reading it: a TCP conn goes to the epoll
// driver (poller_linux.go: no goroutine while idle), others get one read goroutine. When nc comes from
// fasthttp's Hijack, bytes fasthttp already buffered are fed to the parser first and the raw
// socket is used from then on, so fasthttp's reader is not kept alive by an idle socket (and,
// with Options.ReaderFree, goes back to fasthttp's pool).
// h may receive OnMessage as soon as the read goroutine starts; a Handler that needs the *Conn
// first implements Adopter.
func Adopt(nc net.Conn, h Handler, opts Options, f *Flusher) *Conn {
	c := &Conn{
		h: h, f: f, overflowFrames: opts.OverflowFrames,
		maxMsg: opts.MaxMessageSize, maxQueueBytes: opts.MaxQueueBytes, maxQueueFrames: opts.MaxQueueFrames,
	}
	if c.maxQueueBytes <= 0 {
		c.maxQueueBytes = 1 << 20
	}
	if c.maxQueueFrames <= 0 {
		c.maxQueueFrames = 4096
	}
	var pending []byte
	if hj, ok := nc.(hijacked); ok {
		nc = hj.UnsafeConn()
		reclaimed := false
		if opts.ReaderFree {
			pending, reclaimed = reclaimReader(hj, nc)
		}
		if !reclaimed {
			pending = drainBuffered(hj)
		}
	}
	c.nc = nc
	c.rc = rawConn(nc)
	c.touch()
	// Everything a close reads (finish, resetIfUnsent) is set before the first frames are queued:
	// a write that fails at once closes the conn while Adopt is still running.
	c.pollRC = c.rc
	if b := tlsBaseOf(nc); b != nil {
		c.base, c.pollRC = b, b.rc
	}
	// The first frames are queued before Adopted, so nothing a just-registered handler is sent
	// (a broadcast) can go ahead of the 101 response, and they are written by Adopt's caller once
	// reading has started, as a readiness pass writes its replies (endPass): no write happens
	// before then, so a failed one finds the handler set up, and there is one goroutine hand-off
	// less per connection than handing them to a flusher.
	first := len(opts.Preface) > 0 || len(opts.First) > 0
	if first {
		c.mu.Lock()
		if len(opts.Preface) > 0 {
			c.push(opts.Preface)
			c.preface = true
		}
		for _, f := range opts.First {
			c.push(f)
		}
		c.inPass = true
		c.mu.Unlock()
	}
	if a, ok := h.(Adopter); ok {
		a.Adopted(c)
	}
	if !c.startPolled(pending) {
		go c.readLoop(pending) // conns without a socket to watch: one read goroutine
	}
	if first {
		c.endPass()
	}
	return c
}

// Adopter is optionally implemented by a Handler that needs its Conn before the first OnMessage
// can arrive (Adopt starts reading before it returns): Adopted runs on Adopt's caller, before the
// read goroutine starts.
type Adopter interface {
	Adopted(c *Conn)
}

// drainBuffered returns what fasthttp's reader holds beyond the upgrade request, without waiting
// for the network: with a deadline already past, the buffered reader hands out what it has and
// the socket read underneath fails at once.
func drainBuffered(hj hijacked) []byte {
	raw := hj.UnsafeConn()
	if raw.SetReadDeadline(time.Unix(1, 0)) != nil {
		return nil
	}
	var out []byte
	buf := make([]byte, 512)
	for {
		n, err := hj.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil || n == 0 {
			break
		}
	}
	_ = raw.SetReadDeadline(time.Time{})
	return out
}

// RemoteAddr is the client's address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// LastActivity is when a frame last arrived (Unix nanoseconds), control frames included: the
// Pusher liveness rule counts any frame (pusher-protocol.md §3).
func (c *Conn) LastActivity() int64 { return c.lastAct.Load() }

func (c *Conn) touch() { c.lastAct.Store(time.Now().UnixNano()) }

// Send queues an immutable frame (built with AppendFrame, possibly shared by many conns). It never
// blocks. When the queue is over its bounds the conn is closed as a slow consumer with 4100 and
// ErrQueueFull returned; nobody else waits.
func (c *Conn) Send(frame []byte) error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return ErrClosed
	}
	if c.queued+len(frame) > c.maxQueueBytes || len(c.queue) >= c.maxQueueFrames {
		c.mu.Unlock()
		c.abort(CloseOverCapacity, ReasonSlowConsumer, c.overflowFrames)
		return ErrQueueFull
	}
	c.push(frame)
	c.scheduleLocked()
	c.mu.Unlock()
	return nil
}

// Ping queues a WebSocket ping frame; every RFC 6455 client answers it without application code.
func (c *Conn) Ping() { _ = c.Send(pingFrame) }

var pingFrame = AppendFrame(nil, OpPing, nil)

// Close queues the final frames and a close frame after everything already queued, then closes
// the connection once they are written (or closeLinger has passed).
func (c *Conn) Close(code int, reason string, final ...[]byte) {
	c.closeReporting(code, reason, code, reason, final, true)
}

// closeReporting is Close with the code and reason OnClose will report, set under the same lock
// as the close frame is queued, so no flush can finish with the other ones.
// Without schedule the caller writes the queue itself (flushNow).
func (c *Conn) closeReporting(code int, reason string, reportCode int, reportWhy string, final [][]byte, schedule bool) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.closing, c.closeCode, c.closeWhy = true, reportCode, reportWhy
	for _, f := range final {
		c.push(f)
	}
	c.push(AppendClose(nil, code, reason))
	if schedule {
		c.scheduleLocked()
	}
	c.mu.Unlock()
}

// abort drops whatever is queued and closes with code, writing only the given frames first.
func (c *Conn) abort(code int, reason string, final [][]byte) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.closing, c.closeCode, c.closeWhy = true, code, reason
	if c.preface {
		// The client has not had the handshake response yet: without it the frames below are
		// noise to it.
		c.queue, c.queued = c.queue[:1], len(c.queue[0])
	} else {
		c.queue, c.queued = nil, 0
	}
	if c.scheduled {
		// A writer holds frames taken from the queue; it appends what it could not write in front
		// of this new queue. Bound that by the linger deadline.
		_ = c.nc.SetWriteDeadline(time.Now().Add(closeLinger))
	}
	for _, f := range final {
		c.push(f)
	}
	c.push(AppendClose(nil, code, reason))
	c.scheduleLocked()
	c.mu.Unlock()
}

// push appends one frame to the queue; c.mu is held.
func (c *Conn) push(f []byte) {
	if c.queue == nil {
		c.queue = c.qbuf[:0]
	}
	c.queue = append(c.queue, f)
	c.queued += len(f)
}

func (c *Conn) scheduleLocked() {
	if c.scheduled || c.closed || c.inPass {
		return
	}
	c.scheduled = true
	c.f.schedule(c)
}

// readBufSize is the read buffer: Pusher messages are small, and a larger message simply takes
// several reads (the parser is incremental).
const readBufSize = 512

// readBufs holds read buffers between reads: a conn borrows one only while bytes are ready, so
// an idle conn parked in the poller holds none.
var readBufs = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}

// readLoop is the conn's one read goroutine. It owns the Parser.
func (c *Conn) readLoop(pending []byte) {
	p := Parser{MaxMessage: c.maxMsg}
	emit := c.emit
	if len(pending) > 0 {
		if err := p.Feed(pending, emit); err != nil {
			c.failRead(err)
			return
		}
	}
	for {
		bp, n, err := c.read()
		if n > 0 {
			c.touch()
			// Feed unmasks in place: the buffer is ours until it goes back to the pool.
			perr := p.Feed((*bp)[:n], emit)
			readBufs.Put(bp)
			if perr != nil {
				c.failRead(perr)
				return
			}
		} else if bp != nil {
			readBufs.Put(bp)
		}
		if err != nil {
			c.finish(CloseAbnormal, "connection lost")
			return
		}
	}
}

// readBuffered reads whatever net.Conn has into a pooled buffer: conns without a raw fd (TLS),
// and every conn under the portable driver.
func (c *Conn) readBuffered() (*[]byte, int, error) {
	bp := readBufs.Get().(*[]byte)
	n, err := c.nc.Read(*bp)
	return bp, n, err
}

// errPeerClosed stops the parser after a close frame: nothing after it is read.
var errPeerClosed = errors.New("peer sent close")

func (c *Conn) emit(op Opcode, payload []byte) error {
	switch op {
	case OpText:
		c.h.OnMessage(payload)
	case OpPing:
		_ = c.Send(AppendFrame(nil, OpPong, payload))
	case OpClose:
		code, reason := CloseNoStatus, ""
		if len(payload) >= 2 {
			code, reason = int(binary.BigEndian.Uint16(payload)), string(payload[2:])
		}
		c.mu.Lock()
		initiated := c.closing
		c.peerClose = true
		c.mu.Unlock()
		if !initiated {
			// Echo the code (RFC 6455 §5.5.1); the conn closes once that is written, and reports
			// the client's code.
			echo := code
			if echo == CloseNoStatus {
				echo = CloseNormal
			}
			// Not scheduled: failRead writes it on this goroutine, then closes at once.
			c.closeReporting(echo, "", code, reason, nil, false)
		}
		return errPeerClosed
	}
	return nil
}

// failRead answers a protocol violation with its close code, or finishes after a client close.
func (c *Conn) failRead(err error) {
	if c.base != nil {
		c.base.nonBlock.Store(false) // the drain below waits for bytes
	}
	var ce *CloseError
	if errors.As(err, &ce) {
		c.Close(ce.Code, ce.Reason)
	}
	if err == errPeerClosed {
		// The client closed first: our echo is the last write, and once it is out the handshake
		// is complete (RFC 6455 §7.1.1). Written here, the usual case ends without a flusher
		// hand-off, a timer or a parked reader.
		c.flushNow()
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	handshakeDone := c.peerClose && c.closing && !c.scheduled && len(c.queue) == 0
	c.mu.Unlock()
	if handshakeDone {
		// We had sent our close and the client answered: the close handshake is complete, and
		// the server closes the TCP connection first (RFC 6455 §7.1.1).
		c.finish(CloseAbnormal, "closed")
		return
	}
	// Wait for the close to be written (bounded), reading nothing more.
	timer := time.AfterFunc(closeLinger, func() { c.finish(CloseAbnormal, "close not written in time") })
	defer timer.Stop()
	buf := make([]byte, 128)
	for {
		// Keep draining until the writer closes the fd, so the kernel does not reset the
		// connection with unread data before the close frame reaches the client.
		if _, err := c.nc.Read(buf); err != nil {
			c.finish(CloseAbnormal, "connection lost")
			return
		}
	}
}

// resetIfUnsent makes the close a reset (SO_LINGER 0) when the kernel still holds bytes the
// client has not acknowledged. finish calls it when the client never answered our close: a slow
// consumer, a dead peer. A plain close would leave the socket in FIN-WAIT-1 holding those bytes
// (up to the send buffer, megabytes) for as long as the client keeps its window shut; nothing in
// them is still owed to a client the server is dropping.
func (c *Conn) resetIfUnsent() {
	rc, tc := c.rc, (*net.TCPConn)(nil)
	if t, ok := c.nc.(*net.TCPConn); ok {
		tc = t
	} else if c.base != nil {
		rc, tc = c.base.rc, c.base.TCPConn
	}
	if tc == nil {
		return
	}
	if rc == nil { // the portable driver keeps no RawConn
		var err error
		if rc, err = tc.SyscallConn(); err != nil {
			return
		}
	}
	if unsentBytes(rc) > 0 {
		_ = tc.SetLinger(0)
		_ = tc.Close()
	}
}

// finish closes the fd (if still open) and reports the close once.
//
// The socket is detached under c.mu and closed after it is released: c.mu is what Send takes,
// and Send runs under a channel's lock during fan-out, so nothing that can wait on the network
// may happen while it is held (a TLS conn's Close writes close_notify and waits up to 5 s for a
// client whose receive window is full). Under TLS the TCP socket is closed directly, without
// close_notify: every path here has either written the WebSocket close frame, which ends the
// session for the client, or found the client unreachable, and a flusher goroutine that calls
// finish must not park on a dead client while other conns wait for it.
func (c *Conn) finish(code int, reason string) {
	c.mu.Lock()
	detach := !c.closed
	if detach {
		c.closed = true
		c.closing = true
		c.queue, c.queued = nil, 0
		c.unpoll()
	}
	reset := detach && !c.peerClose
	if c.closeCode != 0 {
		code, reason = c.closeCode, c.closeWhy
	}
	c.mu.Unlock()
	if reset {
		c.resetIfUnsent()
	}
	if detach {
		_ = socketOf(c.nc).Close()
	}
	c.closeOnce.Do(func() { c.h.OnClose(code, reason) })
}

// socketOf is the transport under a TLS conn (closing it skips close_notify), else nc itself.
func socketOf(nc net.Conn) net.Conn {
	if t, ok := nc.(interface{ NetConn() net.Conn }); ok {
		return t.NetConn()
	}
	return nc
}
