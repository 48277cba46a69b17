// Package gcfloor keeps the garbage collector's heap target from falling below a floor while the
// live heap is small, and leaves Go's default (GOGC=100) alone once the live heap is large.
//
// Why: Go's heap target is twice the live heap, at least 4 MiB. An edge server with few sockets
// has a live heap of a few MiB but allocates briskly on every TLS handshake and proxied request
// (crypto/tls alone allocates tens of KiB per handshake), so it collects dozens of times a
// second: each cycle's fixed cost (mark workers, stack scans, sweeping, assists) was 10–18 % of
// the server's CPU under the handshake benchmarks (docs/benchmarks.md). A floor of a few tens of
// MiB makes those cycles rare at small heaps, and costs nothing at large heaps (10,000 sockets
// hold more than the floor live), where the target is twice the live heap as before.
package gcfloor

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"
)

// DefaultFloor is frontdoor's floor: 32 MiB took the collector's share of the server's CPU under
// the TLS handshake benchmarks from about 8 % to under 1 %; 64 MiB measured no better.
const DefaultFloor = 32 << 20

// defaultHeapMinimum is the runtime's own floor at GOGC=100; it scales with GOGC, which caps the
// percent tune may set (see maxPercent).
const defaultHeapMinimum = 4 << 20

// Tuner re-tunes GOGC after every collection: the floor while collections come within idleGap
// of each other, Go's default otherwise. Stop ends it and restores the percent that was in force
// at Start.
type Tuner struct {
	floor    uint64
	previous int
	idleGap  time.Duration

	mu      sync.Mutex
	stopped bool
	percent int
	lastGC  time.Time
	samples []metrics.Sample
}

// idleGap is the time between collections past which the floor is dropped until they come
// quicker again: an instance allocating that slowly gains nothing from it, and at Go's default
// target the runtime's two-minute forced collection and its scavenger hand the floor's memory
// back to the OS (after 5 s of bench churn a server held 52 MB RSS, against 23 MB without the
// floor; four and a half minutes idle later, 22 MB).
const idleGap = 10 * time.Second

// Start sets the floor (in bytes) and keeps it for the life of the process, unless the operator
// set GOGC (gogcSet): then the runtime does as it was told and Start returns nil. A floor at or
// below 8 MiB (twice the runtime's own) changes nothing and also returns nil.
func Start(floor uint64, gogcSet bool) *Tuner {
	if gogcSet || floor <= 2*defaultHeapMinimum {
		return nil
	}
	t := &Tuner{
		floor:   floor,
		idleGap: idleGap,
		percent: 100,
		samples: []metrics.Sample{
			{Name: "/gc/heap/live:bytes"},
			{Name: "/gc/scan/stack:bytes"},
			{Name: "/gc/scan/globals:bytes"},
		},
	}
	t.previous = debug.SetGCPercent(100)
	t.tune()
	t.arm()
	return t
}

// Stop ends the tuning and puts GOGC back as Start found it.
func (t *Tuner) Stop() {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = true
	debug.SetGCPercent(t.previous)
}

// Percent is the GOGC in force, for the start-up log and tests.
func (t *Tuner) Percent() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.percent
}

// sentinel is garbage on purpose: its finalizer runs after each collection that found it
// unreachable, which is every collection, and re-arms with a new one. It holds a pointer so that
// the tiny allocator does not batch it with other objects (a batched object is freed later).
type sentinel struct{ t *Tuner }

func (t *Tuner) arm() { runtime.SetFinalizer(&sentinel{t}, (*sentinel).fire) }

func (s *sentinel) fire() {
	if s.t.tune() {
		s.t.arm()
	}
}

// tune sets GOGC so that the next target is about the floor, never below 100 (Go's default
// proportion) and never so high that the runtime's own minimum (4 MiB × GOGC/100) passes the
// floor. The runtime's target is live + (live + stacks + globals) × GOGC/100.
func (t *Tuner) tune() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return false
	}
	metrics.Read(t.samples)
	live := t.samples[0].Value.Uint64()
	scanned := live + t.samples[1].Value.Uint64() + t.samples[2].Value.Uint64()
	p := percentFor(t.floor, live, scanned)
	now := time.Now()
	if !t.lastGC.IsZero() && now.Sub(t.lastGC) > t.idleGap {
		p = 100
	}
	t.lastGC = now
	if p != t.percent {
		debug.SetGCPercent(p)
		t.percent = p
	}
	return true
}

// percentFor is the GOGC that puts the heap target at floor for this live heap (bytes marked live)
// and scanned roots (live heap plus goroutine stacks and globals), clamped to
// [100, maxPercent(floor)].
func percentFor(floor, live, scanned uint64) int {
	hi := maxPercent(floor)
	if scanned == 0 {
		return hi
	}
	if live >= floor {
		return 100
	}
	p := (floor - live) * 100 / scanned
	return int(min(max(p, 100), uint64(hi)))
}

// maxPercent is the largest GOGC whose runtime minimum (4 MiB × GOGC/100) is still within floor.
func maxPercent(floor uint64) int { return int(max(floor*100/defaultHeapMinimum, 100)) }
