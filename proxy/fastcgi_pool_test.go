package proxy

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// poolState is what the pool has learned, read under its lock.
func (u *fcgiUpstream) poolState() (learned, open int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.learned, u.open
}

// loadUntil has clients clients request path in a loop until done reports true (checked every
// 20 ms; the test fails after 30 s), and fails the test for any answer but 200 "slow done":
// with more clients than php-fpm has workers, no request may stall (ReadTimeout turns a stall
// into a 504).
func loadUntil(t *testing.T, front string, clients int, path string, done func() bool) {
	t.Helper()
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if err := getSlow(front + path); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	deadline := time.Now().Add(30 * time.Second)
	met := false
	for !met && time.Now().Before(deadline) && len(errs) == 0 {
		time.Sleep(20 * time.Millisecond)
		met = done()
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if !met && !t.Failed() {
		t.Fatal("condition not met within 30 s of load")
	}
	if t.Failed() {
		t.FailNow()
	}
}

// defaultPool serves the unix pool of fpm with the default pool (no max_conns) and a read
// timeout short enough that a stalled request fails the test as a 504.
func defaultPool(t *testing.T, fpm *phpFPM) (string, *fcgiUpstream) {
	h, err := New(Config{Root: root(t), Upstreams: []string{fpm.unixURL()}, ReadTimeout: 5 * time.Second}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return serveFront(t, h), h.upstreams[0].(*fcgiUpstream)
}

// TestFastCGIPoolLearnsStatic: without max_conns, 16 clients on a 4-worker static pool. The pool
// learns that php-fpm serves 4 connections at once and then keeps them: 160 more requests dial
// almost nothing (a probe now and then), where a pool that opens a connection per waiting
// request dials about one per request.
func TestFastCGIPoolLearnsStatic(t *testing.T) {
	fpm := startPHPFPM(t, 4)
	front, u := defaultPool(t, fpm)
	// The cold start: a burst of dials, most of them queued in php-fpm, then the limit.
	loadUntil(t, front, 16, "/slow?ms=5", func() bool { learned, _ := u.poolState(); return learned == 4 })
	before := u.dials.Load()
	slowFromSixteenClients(t, front)
	if d := u.dials.Load() - before; d > 16 {
		t.Errorf("%d connections dialed for 160 requests once the limit was learned", d)
	}
	if learned, open := u.poolState(); learned > 4 || open > 5 {
		t.Errorf("learned %d, %d open; php-fpm has 4 workers, and one probe may be open", learned, open)
	}
}

// TestFastCGIPoolGrows: php-fpm that starts workers as they are needed (pm=ondemand from none,
// and Debian's default www.conf: pm=dynamic, 5 children, 2 started) is served with all of its
// workers under load: the probes find each worker php-fpm adds.
func TestFastCGIPoolGrows(t *testing.T) {
	for _, c := range []struct {
		name         string
		max, started int
		lines        []string
	}{
		{"ondemand", 6, 0, []string{"pm = ondemand", "pm.process_idle_timeout = 60s"}},
		{"dynamic", 5, 2, []string{"pm = dynamic", "pm.start_servers = 2", "pm.min_spare_servers = 1", "pm.max_spare_servers = 3"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			fpm := startPHPFPM(t, c.max, c.lines...)
			// Two pools (unix and TCP); ondemand may have started one worker each for the
			// harness's readiness dial.
			waitFor(t, "php-fpm's first workers", func() bool { return fpm.children() >= 2*c.started })
			time.Sleep(200 * time.Millisecond)
			if n := fpm.children(); n > 2*max(c.started, 1) {
				t.Fatalf("php-fpm runs %d workers before any load: the pm lines did not apply", n)
			}
			front, u := defaultPool(t, fpm)
			loadUntil(t, front, 16, "/slow?ms=5", func() bool {
				learned, _ := u.poolState()
				return learned == c.max
			})
			if learned, open := u.poolState(); learned != c.max || open > c.max+1 {
				t.Errorf("learned %d, %d open; php-fpm has %d workers", learned, open, c.max)
			}
		})
	}
}

// TestFastCGIPoolFollowsRestart: php-fpm restarted with fewer workers than the pool learned, then
// with more. With fewer, the connections beyond them queue in php-fpm; they get workers handed
// over (no request waits out the read timeout) and the limit drops. With more, it grows again.
func TestFastCGIPoolFollowsRestart(t *testing.T) {
	fpm := startPHPFPM(t, 4)
	front, u := defaultPool(t, fpm)
	learnedIs := func(n int) func() bool {
		return func() bool { learned, _ := u.poolState(); return learned == n }
	}
	loadUntil(t, front, 16, "/slow?ms=5", learnedIs(4))
	for _, workers := range []int{2, 6} {
		fpm.restart(workers)
		loadUntil(t, front, 16, "/slow?ms=5", learnedIs(workers))
		// And it holds: more load, no request stalls, the limit stays.
		var n atomic.Int64
		loadUntil(t, front, 16, "/slow?ms=5", func() bool { return n.Add(1) > 25 })
		if learned, _ := u.poolState(); learned != workers {
			t.Fatalf("after the restart with %d workers the pool learned %d", workers, learned)
		}
	}
}

// TestFastCGIPoolAllocs: taking a kept connection and giving it back allocates nothing.
func TestFastCGIPoolAllocs(t *testing.T) {
	fpm := startPHPFPM(t, 1)
	front, u := defaultPool(t, fpm)
	if resp, b := do(t, mustReq(t, "GET", front+"/cookies", nil)); resp.StatusCode != 200 {
		t.Fatalf("%d %q", resp.StatusCode, b)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		c, err := u.get(true)
		if err != nil {
			t.Fatal(err)
		}
		c.put()
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per get and put", allocs)
	}
}

// children counts php-fpm's worker processes (Linux /proc).
func (p *phpFPM) children() int {
	pid := p.cmd.Process.Pid
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		p.t.Skipf("no /proc: %v", err)
	}
	return len(strings.Fields(string(b)))
}

// TestFastCGIPoolProbeWhileAllHeld: every kept connection is held by a long request when a probe
// falls due (the last one found no worker, just before). The request waiting in line dials the
// probe itself once it is due and is answered by php-fpm's free worker, before the long request
// ends, instead of waiting for that connection to come back.
func TestFastCGIPoolProbeWhileAllHeld(t *testing.T) {
	fpm := startPHPFPM(t, 2)
	h, err := New(Config{Root: root(t), Upstreams: []string{fpm.unixURL()}, ReadTimeout: 30 * time.Second}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	front := serveFront(t, h)
	u := h.upstreams[0].(*fcgiUpstream)
	u.mu.Lock()
	u.learned = 1 // as after a failed probe: one connection known, the next probe a little later
	u.nextProbe = time.Now().Add(probeInterval / 2)
	u.mu.Unlock()
	order := make(chan string, 2)
	go func() {
		resp, b := do(t, mustReq(t, "GET", front+"/slow?ms=3000", nil))
		order <- fmt.Sprint("long ", resp.StatusCode, " ", string(b))
	}()
	waitFor(t, "the long request on the one connection", func() bool { _, open := u.poolState(); return open == 1 })
	resp, b := do(t, mustReq(t, "GET", front+"/slow?ms=1", nil))
	order <- fmt.Sprint("short ", resp.StatusCode, " ", string(b))
	if first, second := <-order, <-order; first != "short 200 slow done" || second != "long 200 slow done" {
		t.Fatalf("answered in this order: %q, %q; the short request waited for the long one's connection", first, second)
	}
}
