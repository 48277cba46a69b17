//go:build !linux || portable

package ws

import (
	"net"
	"syscall"
)

// The portable driver's socket IO, through net.Conn only: io_linux.go has the same functions on
// the raw fd.

// rawConn is nil: the portable driver never touches the fd, so reads and writes go through
// net.Conn and the runtime poller.
func rawConn(net.Conn) syscall.RawConn { return nil }

// worker is one flusher's reusable state: the frames of the conn being written.
type worker struct {
	bufs [][]byte
}

func newWorker(n int) *worker { return &worker{bufs: make([][]byte, 0, n)} }

// flushOnce hands the conn to a blocking writer: without a non-blocking writev a worker cannot
// try a write without risking a wait on a slow client, which would delay every other conn.
func (c *Conn) flushOnce(*worker) { go c.writeBlocking() }

// writeWaiting writes bufs with net.Buffers (writev where the OS has it), waiting as needed, and
// returns what is left unwritten on an error.
func (c *Conn) writeWaiting(bufs [][]byte) ([][]byte, error) { return writeBuffers(c.nc, bufs) }

// read waits for bytes and returns them in a pooled buffer.
func (c *Conn) read() (*[]byte, int, error) { return c.readBuffered() }

// readNow is never reached: the portable driver does not set nonBlock.
func (b *TLSBase) readNow(p []byte) (int, error) { return b.TCPConn.Read(p) }
