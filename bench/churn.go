package bench

import (
	"context"
	"fmt"
	"time"
)

// churn runs s.Clients loops of connect, subscribe, close (with the closing handshake) for
// s.Duration: the cost of page loads and reconnect storms.
func (r *runner) churn(ctx context.Context, name string, s Sizes) Result {
	res := Result{Scenario: "churn", Name: name,
		Title:     fmt.Sprintf("%d clients loop connect → subscribe → close for %s", s.Clients, s.Duration),
		Params:    params("clients", s.Clients, "duration", s.Duration),
		RateLabel: "cycles",
	}
	ws := newWSClient(r.e, r.o.Target.Insecure, s.Clients)
	errs := newErrorLog()
	var ok, failed counter
	var lat shardedHist
	m := r.monitor(name, ok.Load, func() string { return fmt.Sprintf("errors %d", failed.Load()) })
	ctx, cancel := context.WithTimeout(ctx, s.Duration)
	defer cancel()
	start := time.Now()
	closedLoop(ctx, s.Clients, errs, &ok, &failed, &lat, func(w int) error {
		c, err := ws.dial(context.Background())
		if err == nil {
			_, err = c.subscribe(fmt.Sprintf("bench-churn-%d", w), "", "", ws.timeout, nil)
			c.closeGraceful(2 * time.Second)
		}
		return err
	})
	secs := time.Since(start).Seconds()
	m.finish(&res)
	res.add("cycles", "cycles completed", float64(ok.Load()), "", "higher")
	res.add("cycles_per_s", "connect+subscribe+close cycles per second", float64(ok.Load())/secs, "/s", "higher")
	if res.Server.CPUSeconds > 0 {
		res.add("cycles_per_server_cpu_s", "cycles per server CPU second", float64(ok.Load())/res.Server.CPUSeconds, "/s", "higher")
		if n := float64(ok.Load()); n > 0 {
			// The kernel's share (accept, the TCP handshake and teardown, epoll) is paid by any
			// server; the user share is what the server's own code costs.
			res.add("server_user_us_per_cycle", "server user CPU per cycle", 1e6*(res.Server.CPUSeconds-res.Server.SysSeconds)/n, "µs", "lower")
			res.add("server_sys_us_per_cycle", "server kernel CPU per cycle", 1e6*res.Server.SysSeconds/n, "µs", "lower")
		}
	}
	res.add("errors", "errors", float64(failed.Load()), "", "lower")
	res.Latencies = []Latency{lat.merged().Summary("connect→subscribed→closed")}
	res.Errors = errs.lines()
	return res
}
