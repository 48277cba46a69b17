package proxy

import (
	"bufio"
	"bytes"
	"net"
	"time"
)

// fcgiConn is one connection to php-fpm.
type fcgiConn struct {
	u        *fcgiUpstream
	nc       net.Conn
	br       *bufio.Reader
	r        fcgiReader
	reused   bool
	fresh    bool      // counted in u.pending
	probe    bool      // fresh and dialed beyond the learned limit, counted in u.probing
	queued   bool      // fresh and in u.queued
	started  time.Time // when the request in flight began on this connection (for a fresh one: its dial)
	dead     bool      // closed and no longer counted in u.open
	lastUsed time.Time
	reqID    string       // of the request in flight, for stderr lines
	wdl      lazyDeadline // writes: the params, then the STDIN writer, never both at once
}

// write sends b within the write timeout.
func (c *fcgiConn) write(b []byte) error {
	if at, move := c.wdl.next(); move {
		if err := c.nc.SetWriteDeadline(at); err != nil {
			return err
		}
	}
	_, err := c.nc.Write(b)
	return err
}

// onStderr logs what PHP wrote to FCGI_STDERR (error_log(), notices), rate-limited.
func (c *fcgiConn) onStderr(b []byte) {
	dropped, ok := c.u.stderrs.Allow()
	if !ok {
		return
	}
	ev := c.u.log.Warn().Str("upstream", c.u.name).Str("request_id", c.reqID)
	if dropped > 0 {
		ev = ev.Uint64("suppressed", dropped)
	}
	ev.Bytes("stderr", bytes.TrimSpace(truncate(b, 4096))).Msg("php stderr")
}

// timeoutReader bounds each read from php-fpm: ReadTimeout is the longest silence allowed
// between two reads, as Nginx's fastcgi_read_timeout (see lazyDeadline).
type timeoutReader struct {
	nc  net.Conn
	rdl lazyDeadline
}

func (t *timeoutReader) Read(p []byte) (int, error) {
	if at, move := t.rdl.next(); move {
		if err := t.nc.SetReadDeadline(at); err != nil {
			return 0, err
		}
	}
	return t.nc.Read(p)
}
