package ws

import (
	"net"
	"sync/atomic"
	"syscall"
)

// TLSBase is the TCP conn under a tls.Conn, made so the epoll driver can serve TLS WebSockets
// too: once the conn is adopted, its Read no longer waits for bytes but answers a temporary
// "would block" error, which crypto/tls passes up without marking the conn broken (a partial
// record stays buffered in the tls.Conn for the next call). Until then it is a plain TCP conn,
// so the TLS handshake and the HTTP upgrade read it as usual.
type TLSBase struct {
	*net.TCPConn
	rc       syscall.RawConn
	nonBlock atomic.Bool
}

// TLSBaseListener wraps each accepted TCP conn in a TLSBase; put it under tls.NewListener.
type TLSBaseListener struct{ net.Listener }

// Accept implements net.Listener.
func (l TLSBaseListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c, nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c, nil
	}
	return &TLSBase{TCPConn: tc, rc: rc}, nil
}

// Read implements net.Conn.
func (b *TLSBase) Read(p []byte) (int, error) {
	if !b.nonBlock.Load() {
		return b.TCPConn.Read(p)
	}
	return b.readNow(p)
}

// tlsBaseOf returns the TLSBase under a TLS conn, if it has one: a *tls.Conn, or a type that
// embeds one (the tls package's listener wraps it to log failed handshakes).
func tlsBaseOf(nc net.Conn) *TLSBase {
	if tc, ok := nc.(interface{ NetConn() net.Conn }); ok {
		if b, ok := tc.NetConn().(*TLSBase); ok {
			return b
		}
	}
	return nil
}
