package bench

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram records durations in log-linear buckets: exact below 64 ns, then 64 buckets per
// power of two, so any reported quantile is within 1/64 (1.6 %) of a recorded value. It is safe
// for concurrent use (atomic counters) and needs no allocation per sample, which matters when
// the load generator records hundreds of thousands of deliveries per second on shared cores.
type Histogram struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	min    atomic.Int64 // 0 means unset; values are stored +1
	max    atomic.Int64
	sum    atomic.Int64
}

const (
	histSubBits = 6
	histSub     = 1 << histSubBits
	histBuckets = (64-histSubBits)*histSub + histSub // covers every uint64
)

func histBucket(v uint64) int {
	if v < histSub {
		return int(v)
	}
	e := bits.Len64(v) - histSubBits - 1
	return (e+1)<<histSubBits + int(v>>uint(e)) - histSub
}

// histBounds returns the smallest value of bucket b and the bucket's width.
func histBounds(b int) (lo, width uint64) {
	if b < histSub {
		return uint64(b), 1
	}
	e := b>>histSubBits - 1
	m := uint64(b&(histSub-1)) + histSub
	return m << uint(e), 1 << uint(e)
}

// Record adds one duration; negative durations (clock steps) count as zero.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	h.counts[histBucket(uint64(v))].Add(1)
	h.n.Add(1)
	h.sum.Add(v)
	h.raise(v, v+1)
}

// raise lifts max to at least hi and lowers the stored min (value+1, 0 = unset) to at most lo1.
func (h *Histogram) raise(hi, lo1 int64) {
	for {
		cur := h.max.Load()
		if hi <= cur || h.max.CompareAndSwap(cur, hi) {
			break
		}
	}
	for {
		cur := h.min.Load()
		if (cur != 0 && lo1 >= cur) || h.min.CompareAndSwap(cur, lo1) {
			break
		}
	}
}

// Merge adds every sample of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n.Load() == 0 {
		return
	}
	for i := range o.counts {
		if c := o.counts[i].Load(); c != 0 {
			h.counts[i].Add(c)
		}
	}
	h.n.Add(o.n.Load())
	h.sum.Add(o.sum.Load())
	h.raise(o.max.Load(), o.min.Load())
}

// Count is the number of recorded samples.
func (h *Histogram) Count() uint64 { return h.n.Load() }

// Max is the largest recorded sample (exact).
func (h *Histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Min is the smallest recorded sample (exact), 0 when empty.
func (h *Histogram) Min() time.Duration {
	if v := h.min.Load(); v > 0 {
		return time.Duration(v - 1)
	}
	return 0
}

// Mean is the arithmetic mean of the samples.
func (h *Histogram) Mean() time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sum.Load() / int64(n))
}

// Quantile returns the nearest-rank q-quantile (0 < q <= 1): the value of the sample at rank
// ceil(q*n), as the middle of its bucket clamped to the exact min and max.
func (h *Histogram) Quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	if rank < 1 {
		rank = 1
	}
	if rank >= n {
		return h.Max()
	}
	var seen uint64
	for b := range h.counts {
		seen += h.counts[b].Load()
		if seen >= rank {
			lo, w := histBounds(b)
			v := time.Duration(lo + w/2)
			return min(max(v, h.Min()), h.Max())
		}
	}
	return h.Max()
}

// CDF returns up to points (value, fraction of samples <= value) pairs, one per non-empty
// bucket, thinned evenly when there are more buckets than points.
func (h *Histogram) CDF(points int) []CDFPoint {
	n := h.n.Load()
	if n == 0 {
		return nil
	}
	var all []CDFPoint
	var seen uint64
	for b := range h.counts {
		c := h.counts[b].Load()
		if c == 0 {
			continue
		}
		seen += c
		lo, w := histBounds(b)
		v := min(time.Duration(lo+w), h.Max())
		all = append(all, CDFPoint{Ms: ms(v), Fraction: float64(seen) / float64(n)})
	}
	if len(all) <= points || points < 2 {
		return all
	}
	out := make([]CDFPoint, 0, points)
	for i := 0; i < points; i++ {
		out = append(out, all[i*(len(all)-1)/(points-1)])
	}
	return out
}

// Summary condenses the histogram for a report.
func (h *Histogram) Summary(name string) Latency {
	return Latency{
		Name:  name,
		Count: h.Count(),
		Min:   ms(h.Min()),
		Mean:  ms(h.Mean()),
		P50:   ms(h.Quantile(0.50)),
		P90:   ms(h.Quantile(0.90)),
		P99:   ms(h.Quantile(0.99)),
		P999:  ms(h.Quantile(0.999)),
		Max:   ms(h.Max()),
		CDF:   h.CDF(120),
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// shardedHist spreads concurrent recorders over several histograms so that hundreds of
// thousands of records per second from many goroutines do not fight over one cache line.
type shardedHist [16]Histogram

func (s *shardedHist) Record(shard int, d time.Duration) { s[shard&15].Record(d) }

func (s *shardedHist) merged() *Histogram {
	var h Histogram
	for i := range s {
		h.Merge(&s[i])
	}
	return &h
}

// counter is a cache-line-padded set of counters summed on read, for hot per-delivery counts.
type counter [16]struct {
	n atomic.Uint64
	_ [56]byte
}

func (c *counter) Add(shard int, d uint64) { c[shard&15].n.Add(d) }

func (c *counter) Load() uint64 {
	var t uint64
	for i := range c {
		t += c[i].n.Load()
	}
	return t
}
