package tls

import (
	cryptotls "crypto/tls"
	"errors"
	"io"
	"net"
)

// NewListener is the HTTPS listener: TLS with TLSConfig, where a failed handshake is this
// package's to report and reaches the HTTP server as a clean close. fasthttp would otherwise log
// every failed handshake (its worker pool prints any connection error it does not recognise), so
// each scanner probing for names would cost a log line and defeat the once-per-name refusal log.
func (m *Manager) NewListener(ln net.Listener) net.Listener {
	return &listener{Listener: ln, m: m, cfg: m.TLSConfig()}
}

type listener struct {
	net.Listener
	m   *Manager
	cfg *cryptotls.Config
}

// Accept does not handshake: that happens on the connection's first Read, in the server's
// goroutine for it, so a slow client never holds up the accept loop.
func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &serverConn{Conn: cryptotls.Server(c, l.cfg), m: l.m}, nil
}

// serverConn embeds *tls.Conn so that fasthttp still recognises it as TLS (ctx.IsTLS, and
// ctx.TLSConnectionState for whoever needs the client's certificate or SNI).
type serverConn struct {
	*cryptotls.Conn
	m         *Manager
	handshook bool // only the reading goroutine touches it: fasthttp's worker, then the hijacker
}

func (c *serverConn) Read(p []byte) (int, error) {
	if !c.handshook {
		if err := c.Conn.Handshake(); err != nil {
			c.m.handshakeFailed(c.Conn, err)
			return 0, io.EOF
		}
		c.handshook = true
	}
	return c.Conn.Read(p)
}

// handshakeFailed reports a failed handshake. Refused names were already logged, once per name per
// interval, by the host policy; everything else (port scanners, clients that do not trust the
// certificate, old protocol versions) is routine on a public port and goes to debug.
func (m *Manager) handshakeFailed(c *cryptotls.Conn, err error) {
	var refused errRefused
	if errors.As(err, &refused) {
		return
	}
	m.log.Debug().Err(err).Str("remote", c.RemoteAddr().String()).Str("sni", c.ConnectionState().ServerName).Msg("TLS handshake failed")
}
