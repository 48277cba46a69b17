package tls

import (
	"context"
	cryptotls "crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"syscall"
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
// ctx.TLSConnectionState for whoever needs the client's certificate or SNI). Code that needs the
// connection under TLS (the WebSocket poller) unwraps it with the promoted NetConn method, not
// with a *tls.Conn type assertion.
type serverConn struct {
	*cryptotls.Conn
	m         *Manager
	handshook bool // only the reading goroutine touches it: fasthttp's worker, then the hijacker
}

func (c *serverConn) Read(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, io.EOF
	}
	return c.Conn.Read(p)
}

// handshake runs the TLS handshake once, reporting a failure through handshakeFailed.
func (c *serverConn) handshake() error {
	if c.handshook {
		return nil
	}
	if err := c.Conn.Handshake(); err != nil {
		c.m.handshakeFailed(c.Conn, err)
		return err
	}
	c.handshook = true
	return nil
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

// Listen binds a TCP listener with SO_REUSEPORT on Linux, so a new frontdoor process can bind the
// same address while the old one drains (binary upgrades), and with TCP keepalive (listen_*.go).
// When a port below 1024 is refused, the error names the port and the two usual fixes.
func Listen(addr string) (net.Listener, error) {
	lc := listenConfig()
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return nil, listenError(addr, err)
	}
	return ln, nil
}

// keepAliveSeconds is the idle time before the first keepalive probe and between probes.
const keepAliveSeconds = 15

func listenError(addr string, err error) error {
	_, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	if errors.Is(err, syscall.EACCES) && p > 0 && p < 1024 {
		return fmt.Errorf("listen on %s: port %d needs privileges: run `sudo setcap cap_net_bind_service=+ep $(command -v frontdoor)`, "+
			"or use the systemd unit (AmbientCapabilities=CAP_NET_BIND_SERVICE), or pick a port ≥ 1024 with --https-addr/--http-addr: %w", addr, p, err)
	}
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("listen on %s: the address is in use by another program (is Nginx or Reverb still running?): %w", addr, err)
	}
	return fmt.Errorf("listen on %s: %w", addr, err)
}
