package bench

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Sizes are the scenario parameters. Zero fields take the value from DefaultSizes (or
// SmallSizes with --small).
type Sizes struct {
	Connections int           // connections: sockets to open and hold
	Hold        time.Duration // connections: how long to hold them (ping health is probed meanwhile)
	Subscribers int           // fanout: subscribed sockets
	Channels    int           // fanout: channels the subscribers are spread over
	Rate        float64       // fanout: messages per second offered, all channels together
	LatencyRate float64       // suite: rate of the second, latency-oriented fan-out run
	Size        int           // fanout, publish: event data bytes
	Publishers  int           // fanout: publishing streams per channel, each one request at a time
	Clients     int           // publish, presence, churn, proxy: concurrent clients
	Concurrency int           // connections, fanout: concurrent dials while ramping
	Duration    time.Duration // fanout, publish, presence, churn, proxy: measuring time
	Paths       []string      // proxy: URL paths to request (e.g. /index.php, /robots.txt)
}

// DefaultSizes are the standard sizes of the goals: 19,500 idle sockets, 10,000
// subscribers on one channel at 100 and 10 messages/s of 100 bytes, 50 publishing clients.
var DefaultSizes = Sizes{
	Connections: 19500, Hold: 10 * time.Second,
	Subscribers: 10000, Channels: 1, Rate: 100, LatencyRate: 10, Size: 100, Publishers: 32,
	Clients: 50, Concurrency: 64, Duration: 10 * time.Second,
}

// SmallSizes finish the whole suite in well under a minute (CI smoke runs).
var SmallSizes = Sizes{
	Connections: 200, Hold: 2 * time.Second,
	Subscribers: 200, Channels: 2, Rate: 40, LatencyRate: 10, Size: 100, Publishers: 2,
	Clients: 4, Concurrency: 16, Duration: 2 * time.Second,
}

func (s Sizes) withDefaults(d Sizes) Sizes {
	orDefault(&s.Connections, d.Connections)
	orDefault(&s.Hold, d.Hold)
	orDefault(&s.Subscribers, d.Subscribers)
	orDefault(&s.Channels, d.Channels)
	orDefault(&s.Rate, d.Rate)
	orDefault(&s.LatencyRate, d.LatencyRate)
	orDefault(&s.Size, d.Size)
	orDefault(&s.Publishers, d.Publishers)
	orDefault(&s.Clients, d.Clients)
	orDefault(&s.Concurrency, d.Concurrency)
	orDefault(&s.Duration, d.Duration)
	if len(s.Paths) == 0 {
		s.Paths = d.Paths
	}
	return s
}

// orDefault sets *v to d when *v is the zero value (the flag was not given).
func orDefault[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

// Validate names the first bad size.
func (s Sizes) Validate() error {
	switch {
	case s.Connections < 1:
		return fmt.Errorf("connections: %d: want at least 1", s.Connections)
	case s.Subscribers < 1:
		return fmt.Errorf("subscribers: %d: want at least 1", s.Subscribers)
	case s.Channels < 1 || s.Channels > s.Subscribers:
		return fmt.Errorf("channels: %d: want 1..subscribers (%d)", s.Channels, s.Subscribers)
	case s.Rate <= 0 || s.LatencyRate <= 0:
		return fmt.Errorf("rate: %g: want > 0", s.Rate)
	case s.Size < 40 || s.Size > 10000:
		return fmt.Errorf("size: %d: want 40..10000 bytes (room for the sequence number and timestamp)", s.Size)
	case s.Publishers < 1 || s.Publishers > 64:
		return fmt.Errorf("publishers: %d: want 1..64", s.Publishers)
	case s.Clients < 1:
		return fmt.Errorf("clients: %d: want at least 1", s.Clients)
	case s.Concurrency < 1:
		return fmt.Errorf("concurrency: %d: want at least 1", s.Concurrency)
	case s.Duration <= 0 || s.Hold <= 0:
		return fmt.Errorf("duration: %s: want > 0", s.Duration)
	}
	return nil
}

// Options is one bench invocation.
type Options struct {
	Target Target
	Sizes  Sizes
	// Small selects SmallSizes as the defaults (CI).
	Small bool
	// Progress receives a live progress line (nil: none). Give it a terminal only.
	Progress io.Writer
	// Log receives one line per scenario start and end (nil: none).
	Log io.Writer
	// Interval between resource samples (default 1 s, 250 ms with Small).
	Interval time.Duration
	// Pin is off, on or both (--pin): client on CPU 0, server processes on CPU 1; both runs each
	// scenario unpinned and then pinned.
	Pin string
}

// Scenarios lists the scenario names Run accepts; "suite" expands to Suite.
var Scenarios = []string{"connections", "fanout", "publish", "presence", "churn", "proxy"}

// Suite is the standard set: fan-out at a throughput and at a latency rate, the idle hold,
// publishing, presence churn and connection churn (proxy joins when Sizes.Paths is set).
var Suite = []string{"connections", "fanout-throughput", "fanout-latency", "publish", "presence", "churn"}

type runner struct {
	o    Options
	s    Sizes
	e    *endpoint
	cond *Conditions
}

// Run executes the named scenarios one after the other against o.Target and returns one report.
// A scenario that cannot run at all (bad option, server unreachable) ends Run with an error;
// failures during a scenario are counted in its Result.
func Run(ctx context.Context, o Options, names ...string) (*Report, error) {
	e, err := o.Target.endpoint()
	if err != nil {
		return nil, err
	}
	if err := validPin(o.Pin); err != nil {
		return nil, err
	}
	defaults := DefaultSizes
	if o.Small {
		defaults = SmallSizes
	}
	s := o.Sizes.withDefaults(defaults)
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if o.Interval == 0 {
		o.Interval = time.Second
		if o.Small {
			o.Interval = 250 * time.Millisecond
		}
	}
	var expanded []string
	for _, n := range names {
		if n == "suite" {
			expanded = append(expanded, Suite...)
			if len(s.Paths) > 0 {
				expanded = append(expanded, "proxy")
			}
			continue
		}
		expanded = append(expanded, n)
	}
	// With --node the target names every node; API calls went to the first.
	rep := &Report{Tool: toolName, Label: o.Target.Label, Target: strings.Join(append([]string{o.Target.URL}, o.Target.Nodes...), " + "), Started: time.Now()}
	if rep.Label == "" {
		rep.Label = e.host
	}
	rep.Conditions = machineConditions()
	c := &rep.Conditions
	c.ClientNoFile = raiseNoFile()
	c.ClientSameHost = e.loopback
	c.SmallSizes = o.Small
	c.ServerPIDs = o.Target.ServerPIDs
	if len(c.ServerPIDs) > 0 {
		c.ServerCommand = procCommand(c.ServerPIDs[0])
		c.ServerNoFile = procNoFile(c.ServerPIDs[0])
	} else {
		c.Notes = append(c.Notes, "no --server-pid: server CPU and memory not measured")
	}
	r := &runner{o: o, s: s, e: e, cond: c}
	var pinned *pinning
	defer func() { pinned.unpin() }()
	if o.Pin == PinOn {
		if pinned, err = pin(o.Target.ServerPIDs); err != nil {
			return nil, err
		}
	}
	if o.Pin == PinOn || o.Pin == PinBoth {
		c.Pinned = fmt.Sprintf("client on CPU %d, server pids %v and their children on CPU %d", pinClientCPU, o.Target.ServerPIDs, pinServerCPU)
		if o.Pin == PinBoth {
			c.Pinned = "each scenario unpinned, then pinned (-pinned): " + c.Pinned
		}
		c.Notes = append(c.Notes, "pinned: "+c.Pinned) // the text and HTML reports show notes
	}
	for i, name := range expanded {
		for _, pinThis := range pinPasses(o.Pin) {
			if err := ctx.Err(); err != nil {
				break
			}
			if i > 0 || pinThis && o.Pin == PinBoth {
				// Let the server close the previous scenario's sockets and settle.
				pause := 2 * time.Second
				if o.Small {
					pause = 200 * time.Millisecond
				}
				sleepCtx(ctx, pause)
			}
			runName := name
			if pinThis && o.Pin == PinBoth {
				if pinned, err = pin(o.Target.ServerPIDs); err != nil {
					return nil, err
				}
				runName += "-pinned"
			}
			r.logf("%s: starting", runName)
			res, err := r.scenario(ctx, name)
			if o.Pin == PinBoth {
				pinned.unpin()
				pinned = nil
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", runName, err)
			}
			res.Name = runName
			if res.Params == nil {
				res.Params = map[string]string{}
			}
			res.Params["pinned"] = strconv.FormatBool(pinThis)
			r.logf("%s: done in %.1f s", runName, res.Seconds)
			rep.Results = append(rep.Results, res)
		}
	}
	c.LoadAvgEnd = loadAvg()
	rep.Seconds = time.Since(rep.Started).Seconds()
	return rep, nil
}

// pinPasses is, per scenario, whether each of its runs is pinned.
func pinPasses(mode string) []bool {
	switch mode {
	case PinOn:
		return []bool{true}
	case PinBoth:
		return []bool{false, true}
	}
	return []bool{false}
}

func (r *runner) logf(format string, args ...any) {
	if r.o.Log != nil {
		fmt.Fprintf(r.o.Log, format+"\n", args...)
	}
}

func (r *runner) scenario(ctx context.Context, name string) (Result, error) {
	s := r.s
	switch name {
	case "connections":
		return r.connections(ctx, name, s), nil
	case "fanout":
		return r.fanout(ctx, name, s), nil
	case "fanout-throughput":
		return r.fanout(ctx, name, s), nil
	case "fanout-latency":
		s.Rate = s.LatencyRate
		return r.fanout(ctx, name, s), nil
	case "publish":
		return r.publish(ctx, name, s), nil
	case "presence":
		return r.presence(ctx, name, s), nil
	case "churn":
		return r.churn(ctx, name, s), nil
	case "proxy":
		if len(s.Paths) == 0 {
			return Result{}, fmt.Errorf("no --path given (e.g. --path /index.php --path /robots.txt)")
		}
		return r.proxy(ctx, name, s)
	}
	return Result{}, fmt.Errorf("unknown scenario (want one of %v or suite)", Scenarios)
}

func (r *runner) monitor(name string, count func() uint64, status func() string) *monitor {
	return startMonitor(name, r.o.Target.ServerPIDs, r.o.Interval, r.o.Progress, count, status)
}

// capSockets keeps a socket count inside the open-file limits both processes got, and says so.
func (r *runner) capSockets(n int, what string) int {
	limit := int(r.cond.ClientNoFile) - 200
	if srv, err := strconv.Atoi(r.cond.ServerNoFile); err == nil && srv-200 < limit {
		limit = srv - 200
	}
	if limit > 0 && n > limit {
		r.cond.Notes = append(r.cond.Notes, fmt.Sprintf("%s: %d sockets capped to %d by the open-file limits (client %d, server %s)",
			what, n, limit, r.cond.ClientNoFile, r.cond.ServerNoFile))
		return limit
	}
	return n
}

func params(kv ...any) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[fmt.Sprint(kv[i])] = fmt.Sprint(kv[i+1])
	}
	return m
}

// sleepCtx waits d or until ctx ends; it reports whether the full time passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// closedLoop runs clients loops of op until ctx ends, each client starting its next op when the
// last one returned (a closed system: the server's speed sets the rate). Successes are counted
// and timed, failures counted and logged, all per client shard.
func closedLoop(ctx context.Context, clients int, errs *errorLog, ok, failed *counter, lat *shardedHist, op func(w int) error) {
	var wg sync.WaitGroup
	for w := range clients {
		wg.Go(func() {
			for ctx.Err() == nil {
				t0 := time.Now()
				if err := op(w); err != nil {
					failed.Add(w, 1)
					errs.add(err)
					continue
				}
				lat.Record(w, time.Since(t0))
				ok.Add(w, 1)
			}
		})
	}
	wg.Wait()
}
