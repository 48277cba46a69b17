package bench

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
)

// readerGroup reads many subscribed sockets for a scenario and closes them at its end.
//
// On plain TCP it detaches each socket from the WebSocket library after the subscription and
// hands its file descriptor to one of a few epoll loops (one per CPU) that read with a shared
// buffer and parse frames with frameParser. Compared with a goroutine and a buffered reader per
// socket, that costs one read(2) per readiness event instead of two (the second returning
// EAGAIN) and no goroutine wake-up per delivery, which halves the load generator's CPU per
// delivery — it shares the cores with the server it measures. Over TLS each socket keeps a
// reading goroutine.
type readerGroup struct {
	loops   []*epollLoop
	next    atomic.Uint64
	wg      sync.WaitGroup
	mu      sync.Mutex
	gconns  []*wsConn // sockets read by goroutines
	closing atomic.Bool
	once    sync.Once
}

func newReaderGroup(e *endpoint) *readerGroup {
	g := &readerGroup{}
	if e.tls {
		return g
	}
	for i := 0; i < runtime.GOMAXPROCS(0); i++ {
		l, err := newEpollLoop(&g.closing)
		if err != nil {
			break
		}
		g.loops = append(g.loops, l)
	}
	return g
}

// start reads c until the group stops. onMsg gets every data message except pusher:ping, which
// is answered; onClose is called once if the server ends the socket before the group stops.
// Calls for one socket never overlap.
func (g *readerGroup) start(c *wsConn, onMsg func([]byte), onClose func(error)) {
	if g.startRaw(c, onMsg, onClose) {
		return
	}
	g.mu.Lock()
	g.gconns = append(g.gconns, c)
	g.mu.Unlock()
	g.wg.Go(func() {
		err := c.loop(onMsg)
		if !g.closing.Load() {
			onClose(err)
		}
	})
}

// stop closes every socket (with a close frame) and waits for the readers. Idempotent.
func (g *readerGroup) stop() {
	g.once.Do(func() {
		g.closing.Store(true)
		for _, l := range g.loops {
			l.stop()
		}
		g.mu.Lock()
		conns := g.gconns
		g.mu.Unlock()
		closeAll(conns, 64)
		g.wg.Wait()
	})
}

// errServerClose ends a socket whose server sent a close frame.
var errServerClose = errors.New("server sent a close frame")
