package bench

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// publish measures the HTTP API alone: s.Clients clients each send signed events one after the
// other (keep-alive) for s.Duration to a channel nobody subscribes to.
func (r *runner) publish(ctx context.Context, name string, s Sizes) Result {
	res := Result{Scenario: "publish", Name: name,
		Title:     fmt.Sprintf("%d clients POST /apps/{id}/events back to back for %s, %d-byte data", s.Clients, s.Duration, s.Size),
		Params:    params("clients", s.Clients, "duration", s.Duration, "size", s.Size),
		RateLabel: "requests",
	}
	api := newAPIClient(r.e, r.o.Target.Insecure, s.Clients)
	errs := newErrorLog()
	var ok, failed counter
	var lat shardedHist
	m := r.monitor(name, ok.Load, func() string { return fmt.Sprintf("errors %d", failed.Load()) })
	ctx, cancel := context.WithTimeout(ctx, s.Duration)
	defer cancel()
	start := time.Now()
	var seq atomic.Int64
	closedLoop(ctx, s.Clients, errs, &ok, &failed, &lat, func(w int) error {
		return api.trigger("bench-publish", benchPayload(w, seq.Add(1), time.Now(), s.Size))
	})
	secs := time.Since(start).Seconds()
	m.finish(&res)
	res.add("requests", "requests answered 200", float64(ok.Load()), "", "higher")
	res.add("requests_per_s", "requests per second", float64(ok.Load())/secs, "/s", "higher")
	res.add("errors", "errors", float64(failed.Load()), "", "lower")
	l := lat.merged()
	res.add("p99_ms", "latency p99", ms(l.Quantile(0.99)), "ms", "lower")
	res.Latencies = []Latency{l.Summary("publish API call")}
	res.Errors = errs.lines()
	return res
}
