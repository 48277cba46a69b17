package bench

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// rampStats is the outcome of opening many subscribed sockets.
type rampStats struct {
	established atomic.Uint64
	failed      atomic.Uint64
	setup       Histogram // dial + connection_established + subscription_succeeded
	seconds     float64
}

// ramp opens n sockets with conc concurrent dialers; each subscribes to channel(i) and is handed
// to ready(i, conn), which must start the socket's reader. It stops early when ctx ends.
func (r *runner) ramp(ctx context.Context, ws *wsClient, n, conc int, channel func(int) string, errs *errorLog, st *rampStats, ready func(int, *wsConn)) {
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < min(conc, n); w++ {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				c, err := ws.dial(ctx)
				if err == nil {
					if _, err = c.subscribe(channel(i), "", "", ws.timeout, nil); err != nil {
						c.close()
					}
				}
				if err != nil {
					st.failed.Add(1)
					errs.add(err)
					continue
				}
				st.setup.Record(time.Since(t0))
				st.established.Add(1)
				ready(i, c)
			}
		})
	}
	wg.Wait()
	st.seconds = time.Since(start).Seconds()
}

// closeAll closes sockets with conc workers (closing 20,000 one by one takes seconds).
func closeAll(conns []*wsConn, conc int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < conc; w++ {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(conns) {
					return
				}
				if c := conns[i]; c != nil {
					c.close()
				}
			}
		})
	}
	wg.Wait()
}
