package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestHistBucketBounds(t *testing.T) {
	for _, v := range []uint64{0, 1, 63, 64, 65, 127, 128, 129, 1000, 123456789, math.MaxInt64, math.MaxUint64} {
		b := histBucket(v)
		if b < 0 || b >= histBuckets {
			t.Fatalf("bucket %d of %d out of range", b, v)
		}
		lo, w := histBounds(b)
		if v < lo || v-lo >= w {
			t.Fatalf("value %d not in bucket %d [%d, +%d)", v, b, lo, w)
		}
		if w > 1 && float64(w)/float64(lo) > 1.0/64+1e-12 {
			t.Fatalf("bucket %d too wide: %d at %d", b, w, lo)
		}
	}
}

// Quantiles agree with the exact nearest-rank quantile of the sorted sample within 1/64.
func TestHistogramQuantilesMatchSortedSample(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	dists := map[string]func() time.Duration{
		"uniform":   func() time.Duration { return time.Duration(r.Int64N(int64(50 * time.Millisecond))) },
		"lognormal": func() time.Duration { return time.Duration(math.Exp(r.NormFloat64()*1.5 + 13)) },
		"small":     func() time.Duration { return time.Duration(r.Int64N(200)) },
	}
	for name, gen := range dists {
		t.Run(name, func(t *testing.T) {
			var h Histogram
			vals := make([]time.Duration, 20001)
			for i := range vals {
				vals[i] = gen()
				h.Record(vals[i])
			}
			slices.Sort(vals)
			for _, q := range []float64{0.001, 0.1, 0.5, 0.9, 0.99, 0.999, 1} {
				exact := vals[int(math.Ceil(q*float64(len(vals))))-1]
				got := h.Quantile(q)
				if diff := math.Abs(float64(got - exact)); diff > float64(exact)/64+1 {
					t.Errorf("q%.3f = %v, exact %v", q, got, exact)
				}
			}
			if h.Min() != vals[0] || h.Max() != vals[len(vals)-1] || h.Count() != uint64(len(vals)) {
				t.Errorf("min/max/count %v %v %d, want %v %v %d", h.Min(), h.Max(), h.Count(), vals[0], vals[len(vals)-1], len(vals))
			}
			cdf := h.CDF(50)
			if len(cdf) == 0 || len(cdf) > 50 || cdf[len(cdf)-1].Fraction != 1 {
				t.Fatalf("cdf %v", cdf)
			}
			for i := 1; i < len(cdf); i++ {
				if cdf[i].Ms < cdf[i-1].Ms || cdf[i].Fraction < cdf[i-1].Fraction {
					t.Fatalf("cdf not monotonic at %d: %v", i, cdf)
				}
			}
		})
	}
}

func TestHistogramMergeKeepsExactExtremes(t *testing.T) {
	var s shardedHist
	for i := 1; i <= 1000; i++ {
		s.Record(i, time.Duration(i)*time.Microsecond)
	}
	h := s.merged()
	if h.Count() != 1000 || h.Min() != time.Microsecond || h.Max() != time.Millisecond {
		t.Fatalf("count %d min %v max %v", h.Count(), h.Min(), h.Max())
	}
	if m := h.Mean(); m != 500500*time.Nanosecond {
		t.Fatalf("mean %v", m)
	}
	if p := h.Quantile(0.5); math.Abs(float64(p-500*time.Microsecond)) > float64(500*time.Microsecond)/64 {
		t.Fatalf("p50 %v", p)
	}
}

func TestHistogramEmpty(t *testing.T) {
	var h Histogram
	if h.Quantile(0.99) != 0 || h.Min() != 0 || h.Max() != 0 || h.CDF(10) != nil || h.Mean() != 0 {
		t.Fatal("empty histogram reports values")
	}
}

func TestSeqTracker(t *testing.T) {
	tests := []struct {
		name                     string
		arrivals                 []int64
		sent                     int64
		lost, dups, reordered, u int64
	}{
		{"in order", []int64{0, 1, 2, 3}, 4, 0, 0, 0, 4},
		{"gap", []int64{0, 1, 3}, 4, 1, 0, 0, 3},
		{"tail lost", []int64{0, 1}, 4, 2, 0, 0, 2},
		{"duplicate", []int64{0, 1, 1, 2}, 3, 0, 1, 0, 3},
		{"reordered", []int64{0, 2, 1, 3}, 4, 0, 0, 1, 4},
		{"late dup of reordered", []int64{1, 0, 0}, 2, 0, 1, 1, 2},
		{"invalid ignored", []int64{-1, 0}, 1, 0, 0, 0, 1},
		{"large seq grows", []int64{0, 5000, 1}, 5001, 4998, 0, 1, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSeqTracker()
			for _, a := range tt.arrivals {
				s.add(a)
			}
			if got := s.lost(tt.sent); got != tt.lost {
				t.Errorf("lost %d, want %d", got, tt.lost)
			}
			if int64(s.dups) != tt.dups || int64(s.reordered) != tt.reordered || int64(s.unique) != tt.u {
				t.Errorf("dups %d reordered %d unique %d, want %d %d %d", s.dups, s.reordered, s.unique, tt.dups, tt.reordered, tt.u)
			}
		})
	}
}
