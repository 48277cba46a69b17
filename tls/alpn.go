package tls

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// SplitH2 puts HTTP/2 beside HTTP/1.1 on one TLS listener. fasthttp speaks HTTP/1.1 only, and
// which protocol a connection speaks is known only once its handshake has chosen one by ALPN. So
// every connection accepted from ln (a listener from NewListener) is handshaken in a goroutine of
// its own (a slow client never holds up the accept loop, as with NewListener alone). Those that
// chose h2 come out of the h2 listener's Accept as the *tls.Conn itself, handshake done, which is
// what net/http's server needs to serve HTTP/2 on it; all others (http/1.1, or a client without
// ALPN) come out of h1's. A failed handshake is reported as NewListener's are and the connection
// closed.
//
// handshakeTimeout bounds the handshake (the HTTP/1.1 server's read timeout bounded it before
// this split existed; automatic certificates are obtained during a first handshake, which can
// take seconds).
//
// Closing h1 closes ln, and with it h2. Closing h2 alone stops HTTP/2 only: later h2
// connections are closed after their handshake.
func SplitH2(ln net.Listener, handshakeTimeout time.Duration) (h1, h2 net.Listener) {
	s := &splitter{ln: ln, timeout: handshakeTimeout, failed: make(chan struct{}), workers: handshakers{next: make(chan net.Conn)}}
	s.h1 = newSubListener(s, true)
	s.h2 = newSubListener(s, false)
	go s.acceptLoop()
	return s.h1, s.h2
}

type splitter struct {
	ln      net.Listener
	timeout time.Duration
	h1, h2  *subListener
	failed  chan struct{} // the accept loop ended with err
	err     error
	workers handshakers
}

// handshakers runs each handshake on a goroutine of its own, reusing goroutines that finished
// one: a handshake grows its goroutine's stack from the runtime's starting size to some 16 KiB
// (crypto/tls's and the key exchange's frames), and on a fresh goroutine every connection paid
// for those copies again (runtime.copystack, about 5 % of the server's CPU under the resumed
// TLS 1.2 benchmark). Up to maxIdleHandshakers wait for the next connection; the others end.
type handshakers struct {
	next chan net.Conn
	idle atomic.Int32
}

// maxIdleHandshakers bounds the goroutines (and their grown stacks) kept between bursts.
const maxIdleHandshakers = 64

func (h *handshakers) run(c net.Conn, route func(net.Conn)) {
	select {
	case h.next <- c: // an idle one took it
	default:
		go h.loop(c, route)
	}
}

func (h *handshakers) loop(c net.Conn, route func(net.Conn)) {
	for {
		route(c)
		if h.idle.Add(1) > maxIdleHandshakers {
			h.idle.Add(-1)
			return
		}
		var ok bool
		c, ok = <-h.next
		h.idle.Add(-1)
		if !ok { // the accept loop ended
			return
		}
	}
}

func (s *splitter) acceptLoop() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			// GuardAccept below already rides out descriptor exhaustion; what remains is the
			// listener's end, passed on to both servers, which stop serving on it.
			s.err = err
			close(s.failed)
			close(s.workers.next) // run is called from this loop only: nothing sends any more
			return
		}
		s.workers.run(c, s.route)
	}
}

// route handshakes c and hands it to the listener for the protocol it chose.
func (s *splitter) route(c net.Conn) {
	sc, ok := c.(*serverConn)
	if !ok { // not from NewListener: nothing to split on
		s.h1.handOver(c)
		return
	}
	_ = sc.SetDeadline(time.Now().Add(s.timeout))
	if err := sc.handshake(); err != nil {
		sc.Close()
		return
	}
	if err := sc.SetDeadline(time.Time{}); err != nil {
		sc.Close()
		return
	}
	if sc.ConnectionState().NegotiatedProtocol == ALPNH2 {
		s.h2.handOver(sc.Conn)
		return
	}
	s.h1.handOver(sc)
}

type subListener struct {
	s         *splitter
	closesAll bool
	conns     chan net.Conn
	closeOnce sync.Once
	closed    chan struct{}
}

func newSubListener(s *splitter, closesAll bool) *subListener {
	return &subListener{s: s, closesAll: closesAll, conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *subListener) handOver(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.closed:
		c.Close()
	case <-l.s.failed:
		c.Close()
	}
}

// Accept returns the next handshaken connection for this listener's protocol.
func (l *subListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	case <-l.s.failed:
		return nil, l.s.err
	}
}

func (l *subListener) Close() error {
	err := net.ErrClosed
	l.closeOnce.Do(func() {
		close(l.closed)
		err = nil
		if l.closesAll {
			err = l.s.ln.Close()
			l.s.h2.Close()
		}
	})
	return err
}

func (l *subListener) Addr() net.Addr { return l.s.ln.Addr() }
