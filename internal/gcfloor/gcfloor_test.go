package gcfloor

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestPercentFor(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		floor, live, scanned uint64
		want                 int
	}{
		{32 * mib, 2 * mib, 2 * mib, 800},        // capped: 4 MiB × 8 = the floor itself
		{32 * mib, 8 * mib, 8 * mib, 300},        // 8 + 8×3 = 32
		{32 * mib, 8 * mib, 12 * mib, 200},       // stacks and globals count towards the target too
		{32 * mib, 20 * mib, 20 * mib, 100},      // 20 + 20 ≥ 32: Go's default already passes the floor
		{32 * mib, 100 * mib, 100 * mib, 100},    // large heap: the default
		{32 * mib, 0, 0, 800},                    // nothing live yet
		{64 * mib, 1 * mib, 1 * mib, 1600},       // capped at 64/4
		{64 * mib, 16 * mib, 16 * mib, 300},      // 16 + 16×3 = 64
		{16 * mib, 1 * mib, 1 * mib, 400},        // capped at 16/4
		{64 * mib, 63 * mib, 63 * mib, 100},      // just under the floor: never below the default
		{64 * mib, 10 * mib, 11 * mib, 490},      // rounds down
		{4 * mib, 1 * mib, 1 * mib, 100},         // a floor below the runtime's own changes nothing
		{1 << 40, 1 * mib, 1 * mib, 26214400},    // a huge floor is capped the same way
		{32 * mib, 31 * mib, 1 << 40, 100},       // scanned far above live: the default
		{32 * mib, 1 * mib, 31 * mib, 100},       // 1 + 31 = 32
		{32 * mib, 1 * mib, 15*mib + mib/2, 200}, // 1 + 15.5×2 = 32
	} {
		if got := percentFor(c.floor, c.live, c.scanned); got != c.want {
			t.Errorf("percentFor(%d MiB, %d MiB, %d MiB) = %d, want %d", c.floor/mib, c.live/mib, c.scanned/mib, got, c.want)
		}
	}
}

// churn allocates n bytes of garbage in 64 KiB pieces and returns how many collections ran.
func churn(n int) uint32 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before := ms.NumGC
	var keep []byte
	for i := 0; i < n; i += 64 << 10 {
		keep = make([]byte, 64<<10)
		keep[0] = byte(i)
	}
	runtime.KeepAlive(keep)
	runtime.ReadMemStats(&ms)
	return ms.NumGC - before
}

// With a small live heap, the floor is what decides how often the collector runs: 512 MiB of
// garbage takes well over a hundred collections at Go's 4 MiB minimum, and about 16 with a
// 32 MiB floor. Each side's bound leaves the other's figure far outside it.
func TestFloorSpacesCollections(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	runtime.GC()
	without := churn(512 << 20)

	tu := Start(32<<20, false)
	if tu == nil {
		t.Fatal("Start returned nil without GOGC")
	}
	defer tu.Stop()
	runtime.GC() // the first collection under the tuner sets the percent for the live heap
	with := churn(512 << 20)
	t.Logf("collections for 512 MiB of garbage: %d at GOGC=100, %d with a 32 MiB floor (GOGC %d)", without, with, tu.Percent())
	if without < 64 {
		t.Fatalf("%d collections without the floor: the heap here is not small, the test measures nothing", without)
	}
	if with > 32 {
		t.Fatalf("%d collections with a 32 MiB floor, want at most 32 (about 16)", with)
	}
	if p := tu.Percent(); p <= 100 {
		t.Fatalf("GOGC %d with a small heap, want above 100", p)
	}
}

// Once the live heap passes the floor, the tuner goes back to Go's default.
func TestLargeHeapKeepsDefault(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	tu := Start(16<<20, false)
	if tu == nil {
		t.Fatal("Start returned nil without GOGC")
	}
	defer tu.Stop()
	runtime.GC()
	if p := tu.Percent(); p <= 100 {
		t.Fatalf("GOGC %d before the heap grew, want above 100", p)
	}
	live := make([][]byte, 0, 64)
	for range 64 {
		live = append(live, make([]byte, 1<<20)) // 64 MiB live, four times the floor
	}
	runtime.GC()
	runtime.GC() // the finalizer of the first collection runs after it; the second makes sure it ran
	if p := tu.Percent(); p != 100 {
		t.Fatalf("GOGC %d with 64 MiB live and a 16 MiB floor, want 100", p)
	}
	runtime.KeepAlive(live)
}

// GOGC set by the operator wins; a floor within the runtime's own does nothing; Stop restores.
func TestStartLeavesOperatorSettings(t *testing.T) {
	if Start(32<<20, true) != nil {
		t.Fatal("Start tuned although GOGC was set")
	}
	if Start(8<<20, false) != nil {
		t.Fatal("Start tuned with a floor of 8 MiB")
	}
	old := debug.SetGCPercent(150)
	defer debug.SetGCPercent(old)
	tu := Start(32<<20, false)
	runtime.GC()
	runtime.GC()
	tu.Stop()
	if got := debug.SetGCPercent(150); got != 150 {
		t.Fatalf("GOGC %d after Stop, want 150 as before Start", got)
	}
	runtime.GC()
	runtime.GC() // a finalizer left armed must not tune again after Stop
	if got := debug.SetGCPercent(150); got != 150 {
		t.Fatalf("GOGC %d after a collection following Stop, want 150", got)
	}
}

// An instance that collects rarely goes back to Go's default, so the memory the floor let it
// hold is returned; busy again, it gets the floor back.
func TestIdleDropsFloor(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	tu := Start(32<<20, false)
	defer tu.Stop()
	tu.mu.Lock()
	tu.idleGap = 200 * time.Millisecond
	tu.mu.Unlock()
	// collect runs one collection and waits for the tuner to have seen it (its finalizer runs
	// on the runtime's finalizer goroutine, after the collection).
	collect := func() {
		tu.mu.Lock()
		before := tu.lastGC
		tu.mu.Unlock()
		runtime.GC()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			tu.mu.Lock()
			seen := tu.lastGC != before
			tu.mu.Unlock()
			if seen {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("the tuner did not run after a collection")
			}
		}
	}
	collect()
	if p := tu.Percent(); p <= 100 {
		t.Fatalf("GOGC %d while collecting often, want the floor's", p)
	}
	time.Sleep(400 * time.Millisecond)
	collect()
	if p := tu.Percent(); p != 100 {
		t.Fatalf("GOGC %d after a quiet spell, want 100", p)
	}
	collect()
	if p := tu.Percent(); p <= 100 {
		t.Fatalf("GOGC %d busy again, want the floor's", p)
	}
}
