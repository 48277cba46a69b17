// Package ws is the WebSocket layer under the Pusher protocol: an IO-free incremental frame
// parser (RFC 6455 §5), the server-frame encoder, and the coalescing non-blocking writer
// (DESIGN "The Pusher core").
//
// # Goroutine ownership
//
// Each Conn has exactly one read goroutine, started by Adopt. It owns the Parser and the read
// buffer, and it is the only caller of Handler.OnMessage. On TCP it waits for readability in the
// runtime poller (syscall.RawConn.Read) holding no buffer; it borrows a 512-byte buffer from a
// sync.Pool only while bytes are ready, so an idle conn costs its goroutine stack and the Conn.
//
// Writes never run on the caller: Send appends a reference to an immutable frame to the conn's
// bounded queue and hands the conn (once, while it is "scheduled") to a Flusher worker, which
// writes every pending frame with one writev attempt on the raw fd. A conn whose socket buffer
// is full (EAGAIN or a partial write) leaves the pool for a short-lived goroutine that waits for
// writability and finishes the queue, so one slow reader never delays another. Conns that are
// not *net.TCPConn (TLS, unix sockets, pipes) always use that goroutine with blocking writes.
// At most one writer (flusher worker or writeBlocking goroutine) owns a conn at a time: the
// "scheduled" flag under Conn.mu is the token. Pongs, pings and close frames go through the same
// queue, so frames never interleave and no write deadline is ever left behind on the socket.
//
// Frames are shared by many conns: nothing here modifies a queued frame. Partial writes are
// tracked by reslicing the conn's own [][]byte, never the bytes.
//
// # Idle memory
//
// Measured by TestIdleMemory (10,000 idle conns on loopback, fasthttp with KeepHijackedConns and
// FastHTTPUpgrader{ReadBufferSize: 512, WriteBufferSize: 1024, WriteBufferPool: &sync.Pool{}},
// clients in another process): about 3.6 KB of heap+stack per conn, 5.4 KB RSS. 2 KB is the read
// goroutine's minimum stack. The ~1.5 KB of heap is, per a heap profile of that test
// (WS_IDLE_HEAPPROFILE), the Conn, the *net.TCPConn with its netFD, poll descriptor and two
// sockaddrs, and the test's own Handler (~0.35 KB, replaced by pusher's Socket in production).
// Nothing is buffered while idle: no read buffer, no queue array, no writer goroutine.
//
// # Lock order
//
// Conn.mu is a leaf lock: no other lock is taken while holding it, no syscall blocks under it,
// and Handler callbacks are never called with it held. Flusher has no lock (a channel).
package ws
