// Package ws is the WebSocket layer under the Pusher protocol: an IO-free incremental frame
// parser (RFC 6455 §5), the server-frame encoder, the epoll read driver and the coalescing
// non-blocking writer (docs/architecture.md "The Pusher core"). Outside Linux, or with the
// "portable" build tag, a portable driver (poller_portable.go, io_portable.go) takes the epoll
// driver's place: a read goroutine per conn and blocking net.Buffers writes.
//
// # Goroutine ownership
//
// Every goroutine here belongs to the Flusher the conn was adopted with, and Flusher.Stop ends
// them. A TCP conn (plain, or the socket under TLS) has no goroutine while idle: its fd sits in
// one of the Flusher's epoll sets (poller_linux.go), and when it turns readable one serving goroutine
// (parked between passes, at most 128 parked) reads until EAGAIN, feeds the conn's Parser, runs
// Handler.OnMessage and re-arms the fd. EPOLLONESHOT makes that goroutine the conn's only reader
// for the pass, so OnMessage is never called concurrently for one conn. A 512-byte read buffer
// is borrowed from a sync.Pool only while bytes are ready. Conns with no socket to watch (a pipe,
// or when epoll is unavailable or a poller failed) get one read goroutine instead (readLoop).
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
// Measured by TestIdleMemory (10,000 idle conns on loopback, clients in another process; the
// figures are in docs/benchmarks.md): about 1.3 KB of heap+stack per conn, 2.1 KB RSS. The heap
// is, per a heap profile of that test (WS_IDLE_HEAPPROFILE), the Conn, the *net.TCPConn with its
// netFD, poll descriptor and two sockaddrs, and the test's own Handler. Nothing is buffered while
// idle: no goroutine, no read buffer, no queue array, no writer goroutine; fasthttp's read buffer
// is drained at Adopt and dropped.
//
// # Lock order
//
// Conn.mu is a leaf lock: no other lock is taken while holding it, no syscall that can wait on
// the network runs under it (finish detaches the socket under it and closes it after), and
// Handler callbacks are never called with it held. Flusher has no lock (a channel).
package ws
