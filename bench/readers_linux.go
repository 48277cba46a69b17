package bench

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// startRaw hands c's socket to an epoll loop; false when there is none or c is not plain TCP.
func (g *readerGroup) startRaw(c *wsConn, onMsg func([]byte), onClose func(error)) bool {
	if len(g.loops) == 0 {
		return false
	}
	fd, err := detach(c)
	if err != nil {
		return false
	}
	l := g.loops[g.next.Add(1)%uint64(len(g.loops))]
	if err := l.add(&rawConn{fd: fd, onMsg: onMsg, onClose: onClose}); err != nil {
		unix.Close(fd)
		onClose(err)
	}
	return true
}

// detach takes the socket's file descriptor away from the WebSocket library: it duplicates the
// descriptor (same non-blocking open file) and closes the original, which unregisters it from Go's
// poller. Nothing can be left in the library's read buffer: the server sends nothing between
// subscription_succeeded and the first publish, and the bench publishes only after every
// subscriber is ready.
func detach(c *wsConn) (int, error) {
	tcp, ok := c.ws.NetConn().(*net.TCPConn)
	if !ok {
		return -1, errors.New("not a TCP connection")
	}
	sc, err := tcp.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd, derr := -1, error(nil)
	if err := sc.Control(func(f uintptr) { fd, derr = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, derr
	}
	tcp.Close()
	return fd, nil
}

// rawConn is one detached socket, touched only by its loop's goroutine (and by stop once the
// loop has exited).
type rawConn struct {
	fd      int
	p       frameParser
	frag    []byte
	inFrag  bool
	onMsg   func([]byte)
	onClose func(error)
}

func (rc *rawConn) frame(op byte, fin bool, payload []byte) error {
	switch op {
	case 0x1, 0x2:
		if rc.inFrag {
			return errors.New("websocket: new message inside a fragmented one")
		}
		if !fin {
			rc.frag, rc.inFrag = append(rc.frag[:0], payload...), true
			return nil
		}
		rc.deliver(payload)
	case 0x0:
		if !rc.inFrag {
			return errors.New("websocket: continuation without a message")
		}
		rc.frag = append(rc.frag, payload...)
		if fin {
			rc.inFrag = false
			rc.deliver(rc.frag)
		}
	case 0x9:
		rc.write(clientFrame(0xA, payload))
	case 0xA:
	case 0x8:
		rc.write(clientFrame(0x8, payload))
		if len(payload) >= 2 {
			return fmt.Errorf("%w (code %d %s)", errServerClose, int(payload[0])<<8|int(payload[1]), payload[2:])
		}
		return errServerClose
	default:
		return fmt.Errorf("websocket: unknown opcode %d", op)
	}
	return nil
}

func (rc *rawConn) deliver(msg []byte) {
	if isPusherPing(msg) {
		rc.write(clientFrame(0x1, pongFrame))
		return
	}
	rc.onMsg(msg)
}

// write sends a small frame at once; the socket buffer always has room for one, and a failure
// shows up as a read error next.
func (rc *rawConn) write(b []byte) { unix.Write(rc.fd, b) }

// epollLoop reads its sockets from one goroutine.
type epollLoop struct {
	epfd    int
	closing *atomic.Bool
	mu      sync.Mutex
	conns   map[int32]*rawConn
	quit    atomic.Bool
	done    chan struct{}
}

func newEpollLoop(closing *atomic.Bool) (*epollLoop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	l := &epollLoop{epfd: epfd, closing: closing, conns: map[int32]*rawConn{}, done: make(chan struct{})}
	go l.run()
	return l, nil
}

func (l *epollLoop) add(rc *rawConn) error {
	l.mu.Lock()
	l.conns[int32(rc.fd)] = rc
	l.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(rc.fd)}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, rc.fd, &ev); err != nil {
		l.mu.Lock()
		delete(l.conns, int32(rc.fd))
		l.mu.Unlock()
		return fmt.Errorf("epoll: %w", err)
	}
	return nil
}

func (l *epollLoop) run() {
	defer close(l.done)
	events := make([]unix.EpollEvent, 512)
	buf := make([]byte, 256<<10)
	for !l.quit.Load() {
		n, err := unix.EpollWait(l.epfd, events, 50)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			return
		}
		for i := 0; i < n; i++ {
			l.mu.Lock()
			rc := l.conns[events[i].Fd]
			l.mu.Unlock()
			if rc == nil {
				continue
			}
			// Level-triggered: one read per event; whatever is left is reported again.
			nr, err := unix.Read(rc.fd, buf)
			switch {
			case err == unix.EAGAIN || err == unix.EINTR:
				continue
			case err != nil:
			case nr == 0:
				err = io.EOF
			default:
				err = rc.p.feed(buf[:nr], rc.frame)
			}
			if err != nil {
				l.drop(rc, err)
			}
		}
	}
}

func (l *epollLoop) drop(rc *rawConn, err error) {
	l.mu.Lock()
	delete(l.conns, int32(rc.fd))
	l.mu.Unlock()
	unix.Close(rc.fd) // also leaves the epoll set
	if !l.closing.Load() {
		rc.onClose(err)
	}
}

// stop ends the loop, then sends every socket a close frame and closes it.
func (l *epollLoop) stop() {
	l.quit.Store(true)
	select {
	case <-l.done:
	case <-time.After(5 * time.Second): // EpollWait returns within 50 ms; never hang a run
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	closeMsg := clientFrame(0x8, []byte{0x03, 0xe8}) // 1000 normal closure
	for fd, rc := range l.conns {
		rc.write(closeMsg)
		unix.Close(rc.fd)
		delete(l.conns, fd)
	}
	unix.Close(l.epfd)
}
