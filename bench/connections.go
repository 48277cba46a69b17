package bench

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// connections ramps to s.Connections subscribed sockets, holds them idle for s.Hold while
// probing a sample with pusher:ping (spec § 3), and reports the set-up rate and what each idle
// socket costs the server.
func (r *runner) connections(ctx context.Context, name string, s Sizes) Result {
	n := r.capSockets(s.Connections, name)
	res := Result{Scenario: "connections", Name: name,
		Title:     fmt.Sprintf("ramp to %s subscribed idle sockets (%d dialing at once), hold %s", groupThousands(int64(n)), s.Concurrency, s.Hold),
		Params:    params("sockets", n, "concurrency", s.Concurrency, "hold", s.Hold, "channels", 100),
		RateLabel: "sockets established",
	}
	ws := newWSClient(r.e, r.o.Target.Insecure, n)
	errs := newErrorLog()
	var st rampStats
	type held struct {
		c      *wsConn
		pingAt atomic.Int64
	}
	conns := make([]*held, n)
	var rtt Histogram
	var pongs, dropped atomic.Uint64
	var closing atomic.Bool
	var readers sync.WaitGroup

	base, baseErr := readProcs(r.o.Target.ServerPIDs)
	m := r.monitor(name, func() uint64 { return st.established.Load() }, func() string {
		return fmt.Sprintf("open %d failed %d", st.established.Load(), st.failed.Load())
	})
	srvCPU0 := base.cpu
	r.ramp(ctx, ws, n, s.Concurrency, func(i int) string { return fmt.Sprintf("bench-idle-%d", i%100) }, errs, &st,
		func(i int, c *wsConn) {
			h := &held{c: c}
			conns[i] = h
			readers.Go(func() {
				err := c.loop(func(msg []byte) {
					if bytes.Contains(msg, []byte(`"pusher:pong"`)) {
						if t := h.pingAt.Swap(0); t != 0 {
							rtt.Record(time.Duration(time.Now().UnixNano() - t))
							pongs.Add(1)
						}
					}
				})
				if !closing.Load() {
					dropped.Add(1)
					errs.add(fmt.Errorf("socket closed while held: %w", err))
				}
			})
		})
	rampUse, rampErr := readProcs(r.o.Target.ServerPIDs)
	holdStart := time.Now()

	// Hold: let the server settle, then ping a rotating sample every second.
	var pings uint64
	holdEnd := time.Now().Add(s.Hold)
	sleepCtx(ctx, min(s.Hold/4, 2*time.Second))
	sample := min(200, n)
	cursor := 0
	for time.Now().Before(holdEnd) && ctx.Err() == nil {
		for k := 0; k < sample; k++ {
			h := conns[cursor%n]
			cursor++
			if h == nil {
				continue
			}
			h.pingAt.Store(time.Now().UnixNano())
			if h.c.send(pingFrame) == nil {
				pings++
			}
		}
		sleepCtx(ctx, min(time.Second, time.Until(holdEnd)))
	}
	// Outstanding pongs get up to 2 s more.
	for wait := time.Now().Add(2 * time.Second); pongs.Load() < pings && time.Now().Before(wait); {
		time.Sleep(10 * time.Millisecond)
	}
	heldUse, heldErr := readProcs(r.o.Target.ServerPIDs)
	holdSecs := time.Since(holdStart).Seconds()

	closing.Store(true)
	all := make([]*wsConn, 0, n)
	for _, h := range conns {
		if h != nil {
			all = append(all, h.c)
		}
	}
	closeAll(all, s.Concurrency)
	readers.Wait()
	m.finish(&res)

	est := float64(st.established.Load())
	res.add("established", "sockets established", est, "", "higher")
	res.add("failed", "sockets failed", float64(st.failed.Load()), "", "lower")
	res.add("handshakes_per_s", "connect+subscribe per second", est/st.seconds, "/s", "higher")
	if len(r.o.Target.ServerPIDs) > 0 && baseErr == nil && rampErr == nil && heldErr == nil && est > 0 {
		if cpu := (rampUse.cpu - srvCPU0).Seconds(); cpu > 0 {
			res.add("handshakes_per_server_cpu_s", "connect+subscribe per server CPU second", est/cpu, "/s", "higher")
		}
		res.add("server_bytes_per_socket", "server RSS per idle socket", float64(heldUse.rss-base.rss)/est/1024, "KB", "lower")
		res.add("server_rss_held", "server RSS while holding", float64(heldUse.rss)/(1<<20), "MB", "lower")
		res.add("server_cpu_held", "server CPU while holding (idle sockets + pings)", 100*(heldUse.cpu-rampUse.cpu).Seconds()/holdSecs, "% of a core", "lower")
	}
	res.add("pings", "pusher:ping sent while held", float64(pings), "", "")
	res.add("pong_missing", "pongs missing", float64(pings-min(pings, pongs.Load())), "", "lower")
	res.add("dropped", "sockets dropped by the server while held", float64(dropped.Load()), "", "lower")
	res.Latencies = []Latency{st.setup.Summary("connect+subscribe"), rtt.Summary("ping→pong (idle)")}
	res.Errors = append(res.Errors, errs.lines()...)
	return res
}
