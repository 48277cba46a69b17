// Package wire is the WebSocket layer under the Pusher protocol: an IO-free incremental frame
// parser, the server-frame encoder, and the coalescing non-blocking writer (DESIGN "The Pusher
// core").
//
// Goroutines: each Conn has exactly one read goroutine, which owns the Parser and calls
// Handler.OnMessage. Writes never run on the caller: Send appends a reference to an immutable
// frame to the conn's bounded queue and hands the conn to a Flusher worker, which writes every
// pending frame with one writev. A conn whose socket buffer is full leaves the pool for a
// short-lived goroutine that waits for writability, so one slow reader never delays another.
//
// Lock order: Conn.mu is a leaf lock; no other lock is taken while holding it, and Handler
// callbacks are never called with it held.
package wire
