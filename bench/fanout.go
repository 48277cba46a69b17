package bench

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The payload of every fan-out event: "B1 <seq> <send time, Unix ns> xxxx…", padded to the
// configured size. Plain ASCII without quotes, so every server forwards it byte for byte inside
// the frame's data string and subscribers find it without a JSON parser.
const payloadTag = `"data":"B1 `

func benchPayload(seq int64, sent time.Time, size int) string {
	var b strings.Builder
	b.Grow(size)
	b.WriteString("B1 ")
	b.WriteString(strconv.FormatInt(seq, 10))
	b.WriteByte(' ')
	b.WriteString(strconv.FormatInt(sent.UnixNano(), 10))
	b.WriteByte(' ')
	for b.Len() < size {
		b.WriteByte('x')
	}
	return b.String()
}

// parsePayload finds the sequence number and send time in a delivered frame.
func parsePayload(msg []byte) (seq, sentNs int64, ok bool) {
	i := bytes.Index(msg, []byte(payloadTag))
	if i < 0 {
		return 0, 0, false
	}
	rest := msg[i+len(payloadTag):]
	seq, rest, ok = leadingInt(rest)
	if !ok || len(rest) == 0 || rest[0] != ' ' {
		return 0, 0, false
	}
	sentNs, rest, ok = leadingInt(rest[1:])
	if !ok || len(rest) == 0 || (rest[0] != ' ' && rest[0] != '"') {
		return 0, 0, false
	}
	return seq, sentNs, true
}

func leadingInt(b []byte) (int64, []byte, bool) {
	var n int64
	i := 0
	for ; i < len(b) && i < 19 && b[i] >= '0' && b[i] <= '9'; i++ {
		n = n*10 + int64(b[i]-'0')
	}
	return n, b[i:], i > 0
}

// msgStat follows one published message across all subscribers of its channel.
type msgStat struct {
	got   atomic.Int32
	worst atomic.Int64 // slowest delivery so far, ns
}

// fanout subscribes s.Subscribers sockets spread over s.Channels channels, then publishes
// s.Rate messages per second for s.Duration over the signed HTTP API and checks every delivery
// for loss, duplication and order, and its end-to-end latency (publish call → frame read).
func (r *runner) fanout(ctx context.Context, name string, s Sizes) Result {
	n := r.capSockets(s.Subscribers, name)
	total := int64(math.Floor(s.Rate * s.Duration.Seconds()))
	res := Result{Scenario: "fanout", Name: name,
		Title: fmt.Sprintf("%s subscribers on %d channel(s), %g msg/s for %s, %d-byte payload (%s deliveries/s offered)",
			groupThousands(int64(n)), s.Channels, s.Rate, s.Duration, s.Size, groupThousands(int64(s.Rate*float64(n)))),
		Params: params("subscribers", n, "channels", s.Channels, "rate", s.Rate, "duration", s.Duration,
			"size", s.Size, "messages", total),
		RateLabel: "deliveries",
	}
	ws := newWSClient(r.e, r.o.Target.Insecure, n)
	api := newAPIClient(r.e, r.o.Target.Insecure, s.Channels)
	errs := newErrorLog()

	perChan := total/int64(s.Channels) + 1
	stats := make([][]msgStat, s.Channels)
	for k := range stats {
		stats[k] = make([]msgStat, perChan)
	}
	subsOn := make([]int32, s.Channels)
	type sub struct {
		c     *wsConn
		ch    int
		track seqTracker
	}
	subs := make([]*sub, n)
	var delivered, dups, other counter
	var lat shardedHist
	var readers sync.WaitGroup
	var closing atomic.Bool
	var dropped atomic.Uint64
	var subsMu sync.Mutex

	var st rampStats
	m := r.monitor(name, delivered.Load, func() string {
		return fmt.Sprintf("subscribed %d", st.established.Load())
	})
	channel := func(k int) string { return fmt.Sprintf("bench-fanout-%d", k) }
	r.ramp(ctx, ws, n, s.Concurrency, func(i int) string { return channel(i % s.Channels) }, errs, &st,
		func(i int, c *wsConn) {
			sb := &sub{c: c, ch: i % s.Channels, track: newSeqTracker()}
			subsMu.Lock()
			subs[i] = sb
			subsOn[sb.ch]++
			subsMu.Unlock()
			shard := i
			readers.Go(func() {
				err := c.loop(func(msg []byte) {
					seq, sent, ok := parsePayload(msg)
					if !ok {
						other.Add(shard, 1)
						return
					}
					d := time.Duration(time.Now().UnixNano() - sent)
					if !sb.track.add(seq) {
						dups.Add(shard, 1)
						return
					}
					delivered.Add(shard, 1)
					lat.Record(shard, d)
					if seq < perChan {
						ms := &stats[sb.ch][seq]
						ms.got.Add(1)
						for {
							w := ms.worst.Load()
							if int64(d) <= w || ms.worst.CompareAndSwap(w, int64(d)) {
								break
							}
						}
					}
				})
				if !closing.Load() {
					dropped.Add(1)
					errs.add(fmt.Errorf("subscriber closed: %w", err))
				}
			})
		})

	// Publish: one goroutine per channel keeps that channel's events in order (the bench must
	// not reorder what it then checks); message k goes to channel k%C at start + k/rate.
	var published, pubFailed atomic.Int64
	failedOn := make([]atomic.Int64, s.Channels)
	sentOn := make([]int64, s.Channels)
	var pubLat Histogram
	pubStart := time.Now()
	var pubs sync.WaitGroup
	for k := 0; k < s.Channels; k++ {
		pubs.Go(func() {
			var seq int64
			for msg := int64(k); msg < total && ctx.Err() == nil; msg += int64(s.Channels) {
				at := pubStart.Add(time.Duration(float64(msg) / s.Rate * float64(time.Second)))
				if d := time.Until(at); d > 0 {
					sleepCtx(ctx, d)
				}
				t0 := time.Now()
				err := api.trigger(channel(k), benchPayload(seq, t0, s.Size))
				pubLat.Record(time.Since(t0))
				seq++
				if err != nil {
					failedOn[k].Add(1)
					pubFailed.Add(1)
					errs.add(fmt.Errorf("publish: %w", err))
					continue
				}
				published.Add(1)
			}
			sentOn[k] = seq
		})
	}
	pubs.Wait()
	pubSecs := time.Since(pubStart).Seconds()

	var expected uint64
	for k := range sentOn {
		expected += uint64(sentOn[k]-failedOn[k].Load()) * uint64(subsOn[k])
	}
	// Drain: wait until every delivery arrived, or nothing moved for 3 s (max 20 s).
	lastCount, lastMove := delivered.Load(), time.Now()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline) && ctx.Err() == nil; {
		c := delivered.Load()
		if c >= expected {
			lastMove = time.Now()
			break
		}
		if c != lastCount {
			lastCount, lastMove = c, time.Now()
		} else if time.Since(lastMove) > 3*time.Second {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	deliverSecs := lastMove.Sub(pubStart).Seconds()

	closing.Store(true)
	all := make([]*wsConn, 0, n)
	for _, sb := range subs {
		if sb != nil {
			all = append(all, sb.c)
		}
	}
	closeAll(all, s.Concurrency)
	readers.Wait()
	m.finish(&res)

	var lost, reordered uint64
	for _, sb := range subs {
		if sb == nil {
			continue
		}
		l := sb.track.lost(sentOn[sb.ch]) - failedOn[sb.ch].Load()
		lost += uint64(max(l, 0))
		reordered += sb.track.reordered
	}
	var all100 Histogram
	var incomplete int64
	for k := range stats {
		for seq := int64(0); seq < min(sentOn[k], perChan); seq++ {
			ms := &stats[k][seq]
			switch got := ms.got.Load(); {
			case got == subsOn[k]:
				all100.Record(time.Duration(ms.worst.Load()))
			case got > 0 || failedOn[k].Load() == 0:
				incomplete++
			}
		}
	}
	d := delivered.Load()
	res.add("subscribed", "subscribers", float64(st.established.Load()), "", "higher")
	res.add("subscribe_failed", "subscribe failures", float64(st.failed.Load()), "", "lower")
	res.add("published", "messages published", float64(published.Load()), "", "")
	res.add("publish_failed", "publish failures", float64(pubFailed.Load()), "", "lower")
	res.add("published_per_s", "messages published per second", float64(published.Load())/pubSecs, "/s", "higher")
	res.add("expected", "deliveries expected", float64(expected), "", "")
	res.add("delivered", "deliveries received", float64(d), "", "higher")
	res.add("delivered_per_s", "deliveries per second", float64(d)/deliverSecs, "/s", "higher")
	res.add("lost", "lost", float64(lost), "", "lower")
	res.add("duplicated", "duplicated", float64(dups.Load()), "", "lower")
	res.add("out_of_order", "out of order", float64(reordered), "", "lower")
	res.add("incomplete_messages", "messages not delivered to every subscriber", float64(incomplete), "", "lower")
	res.add("dropped", "subscribers dropped by the server", float64(dropped.Load()), "", "lower")
	res.Latencies = []Latency{
		lat.merged().Summary("publish→delivery"),
		all100.Summary("publish→all subscribers"),
		pubLat.Summary("publish API call"),
		st.setup.Summary("connect+subscribe"),
	}
	res.Errors = append(res.Errors, errs.lines()...)
	return res
}
