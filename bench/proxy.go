package bench

import (
	"context"
	cryptotls "crypto/tls"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// proxy measures plain HTTP through the front door: for each of s.Paths in turn, s.Clients
// keep-alive clients GET it back to back for s.Duration. Pointing --http-url at Nginx and at
// frontdoor compares the two on the same PHP endpoint and static file.
func (r *runner) proxy(ctx context.Context, name string, s Sizes) (Result, error) {
	base := r.e.proxyURL
	res := Result{Scenario: "proxy", Name: name,
		Title:     fmt.Sprintf("%d clients GET %v on %s, %s per path", s.Clients, s.Paths, base.Host, s.Duration),
		Params:    params("clients", s.Clients, "duration", s.Duration, "paths", s.Paths, "base", base.String()),
		RateLabel: "responses",
	}
	host := base.Host
	if base.Port() == "" {
		host += map[string]string{"http": ":80", "https": ":443"}[base.Scheme]
	}
	hc := &fasthttp.HostClient{Addr: host, Name: "frontdoor-bench", IsTLS: base.Scheme == "https",
		TLSConfig: &cryptotls.Config{InsecureSkipVerify: r.o.Target.Insecure, ServerName: base.Hostname()},
		MaxConns:  s.Clients, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
		MaxConnWaitTimeout: 10 * time.Second}
	errs := newErrorLog()
	var ok, failed counter
	m := r.monitor(name, ok.Load, func() string { return fmt.Sprintf("errors %d", failed.Load()) })
	for _, p := range s.Paths {
		u, err := base.Parse(p)
		if err != nil {
			return res, fmt.Errorf("path %q: %v", p, err)
		}
		var pathOK, pathFailed counter
		var lat shardedHist
		pctx, cancel := context.WithTimeout(ctx, s.Duration)
		start := time.Now()
		var wg sync.WaitGroup
		for w := 0; w < s.Clients; w++ {
			wg.Go(func() {
				req := fasthttp.AcquireRequest()
				resp := fasthttp.AcquireResponse()
				defer fasthttp.ReleaseRequest(req)
				defer fasthttp.ReleaseResponse(resp)
				for pctx.Err() == nil {
					req.SetRequestURI(u.String())
					t0 := time.Now()
					err := hc.Do(req, resp)
					if err == nil && resp.StatusCode() >= 400 {
						err = fmt.Errorf("%s: HTTP %d", u.Path, resp.StatusCode())
					}
					if err != nil {
						failed.Add(w, 1)
						pathFailed.Add(w, 1)
						errs.add(simplifyNetErr(err))
						continue
					}
					lat.Record(w, time.Since(t0))
					ok.Add(w, 1)
					pathOK.Add(w, 1)
				}
			})
		}
		wg.Wait()
		cancel()
		secs := time.Since(start).Seconds()
		key := url.PathEscape(p)
		res.add("rps "+key, p+": responses per second", float64(pathOK.Load())/secs, "/s", "higher")
		res.add("errors "+key, p+": errors", float64(pathFailed.Load()), "", "lower")
		l := lat.merged()
		res.add("p99 "+key, p+": latency p99", ms(l.Quantile(0.99)), "ms", "lower")
		res.Latencies = append(res.Latencies, l.Summary("GET "+p))
	}
	m.finish(&res)
	res.Errors = errs.lines()
	return res, nil
}
