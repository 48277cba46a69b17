package tls

import (
	"errors"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/frontdoorhq/frontdoor/internal/ratelog"
)

// Out of descriptors is a load condition, not a broken listener. fasthttp's accept loop treats
// every error it does not recognise as permanent and returns from Serve, so one client holding
// enough idle connections would stop the whole server (and, under systemd, crash-loop it through
// the reconnect storm that follows). GuardAccept keeps accepting instead:
//
//   - EMFILE/ENFILE from accept(2) never reach the HTTP server;
//   - one descriptor is held in reserve (/dev/null); when accept fails for lack of descriptors,
//     the reserve is released, the waiting connection is accepted and refused at once (a 503 on
//     a plain HTTP listener; a bare close under TLS, where no handshake can be afforded), and the
//     reserve is taken back. Clients get a fast refusal instead of waiting in the backlog, and the
//     listener's readiness does not spin the accept loop;
//   - when even that fails, the loop backs off (5 ms doubling to 1 s) and tries again, so the
//     server serves again as soon as descriptors are free.
//
// Every exhaustion is counted (Exhausted) and logged at most once per logEvery, with the number
// of occurrences in between.

// AcceptGuard is what GuardAccept needs to know about a listener.
type AcceptGuard struct {
	// Name is the listener's name in logs ("https", "plain").
	Name string
	// RefuseHTTP answers a shed connection with an HTTP 503 (plain-HTTP listeners); otherwise it
	// is closed without a word (TLS: a handshake is not worth a descriptor we do not have).
	RefuseHTTP bool
	// Log receives the rate-limited warning.
	Log zerolog.Logger
}

// Exhausted counts accept(2) failures for lack of descriptors across all guarded listeners, for
// the frontdoor_accept_exhausted_total metric.
func Exhausted() uint64 { return exhausted.Load() }

// Shed counts connections accepted on the reserve descriptor and refused at once.
func Shed() uint64 { return shed.Load() }

var exhausted, shed atomic.Uint64

// GuardAccept wraps ln so that running out of file descriptors never ends its Serve loop.
func GuardAccept(ln net.Listener, g AcceptGuard) net.Listener {
	reserve.init()
	return &guardedListener{Listener: ln, g: g, logs: ratelog.New(1, logEvery)}
}

type guardedListener struct {
	net.Listener
	g    AcceptGuard
	logs *ratelog.Limiter
}

const (
	backoffMin = 5 * time.Millisecond
	backoffMax = time.Second
	logEvery   = 10 * time.Second
)

func (l *guardedListener) Accept() (net.Conn, error) {
	delay := backoffMin
	for {
		c, err := l.Listener.Accept()
		if err == nil || !outOfDescriptors(err) {
			return c, err
		}
		exhausted.Add(1)
		l.warn(err)
		if reserve.shedOne(l.Listener, l.g.RefuseHTTP) {
			delay = backoffMin
			continue
		}
		time.Sleep(delay)
		delay = min(2*delay, backoffMax)
	}
}

// warn logs the exhaustion at most once per logEvery, saying how many it did not log.
func (l *guardedListener) warn(err error) {
	quiet, ok := l.logs.Allow()
	if !ok {
		return
	}
	l.g.Log.Warn().Err(err).Str("listener", l.g.Name).Uint64("suppressed", quiet).
		Str("fix", "raise the descriptor limit (LimitNOFILE in the systemd unit, ulimit -n) or lower --max-connections").
		Msg("out of file descriptors: refusing new connections until some close")
}

func outOfDescriptors(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// reserve is the one descriptor the process keeps back for shedding. One is enough: a shed
// connection lives for at most shedTime, and listeners take turns.
var reserve reserveFD

type reserveFD struct {
	once sync.Once
	mu   sync.Mutex // held while the reserve is given to a shed connection
	f    *os.File
}

func (r *reserveFD) init() {
	r.once.Do(func() { r.f, _ = os.Open(os.DevNull) })
}

// shedOne trades the reserve descriptor for one waiting connection and refuses it. It reports
// false when the reserve is in use or the accept failed, so the caller backs off.
func (r *reserveFD) shedOne(ln net.Listener, refuseHTTP bool) bool {
	if !r.mu.TryLock() {
		return false
	}
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
	c, err := ln.Accept()
	if err != nil {
		r.retake()
		r.mu.Unlock()
		return false
	}
	shed.Add(1)
	go func() {
		refuse(c, refuseHTTP)
		r.retake()
		r.mu.Unlock()
	}()
	return true
}

func (r *reserveFD) retake() {
	if r.f == nil {
		r.f, _ = os.Open(os.DevNull) // still exhausted: the next shed tries again
	}
}

// A shed connection holds the only spare descriptor, so it is answered quickly: its request
// (usually in the socket already) is read for at most shedRead, and the answer and the client's
// close are waited for at most shedTime. Reading before closing matters: closing a socket with
// unread data sends a reset that can destroy the 503 before the client reads it.
const (
	shedRead = 50 * time.Millisecond
	shedTime = 200 * time.Millisecond
)

var overCapacity = func() []byte {
	body := `{"message":"Over capacity: the server is out of connections; retry shortly"}` + "\n"
	return []byte("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n" +
		"Retry-After: 1\r\nConnection: close\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
}()

// refuse answers c and closes it.
func refuse(c net.Conn, refuseHTTP bool) {
	defer c.Close()
	if !refuseHTTP {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		return
	}
	var buf [4096]byte
	_ = c.SetReadDeadline(time.Now().Add(shedRead))
	_, _ = c.Read(buf[:])
	_ = c.SetDeadline(time.Now().Add(shedTime))
	if _, err := c.Write(overCapacity); err != nil {
		return
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	for {
		if _, err := c.Read(buf[:]); err != nil {
			return
		}
	}
}
