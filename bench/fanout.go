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

// The payload of every fan-out event: "B1 <stream> <seq> <send time, Unix ns> xxxx…", padded to
// the configured size. Plain ASCII without quotes, so every server forwards it byte for byte inside
// the frame's data string and subscribers find it without a JSON parser.
const payloadTag = `"data":"B1 `

func benchPayload(stream int, seq int64, sent time.Time, size int) string {
	var b strings.Builder
	b.Grow(size)
	b.WriteString("B1 ")
	b.WriteString(strconv.Itoa(stream))
	b.WriteByte(' ')
	b.WriteString(strconv.FormatInt(seq, 10))
	b.WriteByte(' ')
	b.WriteString(strconv.FormatInt(sent.UnixNano(), 10))
	b.WriteByte(' ')
	for b.Len() < size {
		b.WriteByte('x')
	}
	return b.String()
}

// parsePayload finds the stream, sequence number and send time in a delivered frame.
func parsePayload(msg []byte) (stream int, seq, sentNs int64, ok bool) {
	i := bytes.Index(msg, []byte(payloadTag))
	if i < 0 {
		return 0, 0, 0, false
	}
	rest := msg[i+len(payloadTag):]
	st, rest, ok := leadingInt(rest)
	if !ok || st > 1<<20 || len(rest) == 0 || rest[0] != ' ' {
		return 0, 0, 0, false
	}
	seq, rest, ok = leadingInt(rest[1:])
	if !ok || len(rest) == 0 || rest[0] != ' ' {
		return 0, 0, 0, false
	}
	sentNs, rest, ok = leadingInt(rest[1:])
	if !ok || len(rest) == 0 || (rest[0] != ' ' && rest[0] != '"') {
		return 0, 0, 0, false
	}
	return int(st), seq, sentNs, true
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
//
// Order: each channel is fed by s.Publishers streams. A stream publishes one message at a time
// (the next request leaves after the previous answer), so the server must deliver each stream
// in order to every subscriber — Pusher's ordering promise — while several streams keep the
// offered rate independent of the API's latency. Streams interleave freely.
func (r *runner) fanout(ctx context.Context, name string, s Sizes) Result {
	n := r.capSockets(s.Subscribers, name)
	total := int64(math.Floor(s.Rate * s.Duration.Seconds()))
	P := s.Publishers
	res := Result{Scenario: "fanout", Name: name,
		Title: fmt.Sprintf("%s subscribers on %d channel(s), %g msg/s for %s, %d-byte payload (%s deliveries/s offered)",
			groupThousands(int64(n)), s.Channels, s.Rate, s.Duration, s.Size, groupThousands(int64(s.Rate*float64(n)))),
		Params: params("subscribers", n, "channels", s.Channels, "rate", s.Rate, "duration", s.Duration,
			"size", s.Size, "messages", total, "publishers_per_channel", P),
		RateLabel: "deliveries",
	}
	ws := newWSClient(r.e, r.o.Target.Insecure, n)
	api := newAPIClient(r.e, r.o.Target.Insecure, s.Channels*P)
	errs := newErrorLog()
	readers := newReaderGroup(r.e)
	defer readers.stop()

	// Message k goes to channel k%C; the channel's j-th message (j = k/C) to stream j%P as that
	// stream's seq j/P.
	perStream := total/int64(s.Channels*P) + 1
	stats := make([][][]msgStat, s.Channels)
	for c := range stats {
		stats[c] = make([][]msgStat, P)
		for p := range stats[c] {
			stats[c][p] = make([]msgStat, perStream)
		}
	}
	subsOn := make([]int32, s.Channels)
	type sub struct {
		ch     int
		tracks []seqTracker // one per stream of the channel
	}
	subs := make([]*sub, n)
	var delivered, dups, other counter
	var lat shardedHist
	var dropped atomic.Uint64
	var subsMu sync.Mutex

	var st rampStats
	m := r.monitor(name, delivered.Load, func() string {
		return fmt.Sprintf("subscribed %d", st.established.Load())
	})
	channel := func(k int) string { return fmt.Sprintf("bench-fanout-%d", k) }
	r.ramp(ctx, ws, n, s.Concurrency, func(i int) string { return channel(i % s.Channels) }, errs, &st,
		func(i int, c *wsConn) {
			sb := &sub{ch: i % s.Channels, tracks: make([]seqTracker, P)}
			for p := range sb.tracks {
				sb.tracks[p] = newSeqTracker()
			}
			subsMu.Lock()
			subs[i] = sb
			subsOn[sb.ch]++
			subsMu.Unlock()
			shard := i
			readers.start(c, func(msg []byte) {
				stream, seq, sent, ok := parsePayload(msg)
				if !ok || stream >= P {
					other.Add(shard, 1)
					return
				}
				d := time.Duration(time.Now().UnixNano() - sent)
				if !sb.tracks[stream].add(seq) {
					dups.Add(shard, 1)
					return
				}
				delivered.Add(shard, 1)
				lat.Record(shard, d)
				if seq < perStream {
					ms := &stats[sb.ch][stream][seq]
					ms.got.Add(1)
					for {
						w := ms.worst.Load()
						if int64(d) <= w || ms.worst.CompareAndSwap(w, int64(d)) {
							break
						}
					}
				}
			}, func(err error) {
				dropped.Add(1)
				errs.add(fmt.Errorf("subscriber closed: %w", err))
			})
		})

	var published, pubFailed atomic.Int64
	sentOn := make([][]int64, s.Channels)
	failedOn := make([][]int64, s.Channels)
	for c := range sentOn {
		sentOn[c], failedOn[c] = make([]int64, P), make([]int64, P)
	}
	var pubLat Histogram
	pubStart := time.Now()
	var pubs sync.WaitGroup
	for c := 0; c < s.Channels; c++ {
		for p := 0; p < P; p++ {
			pubs.Go(func() {
				var seq int64
				for j := int64(p); ; j += int64(P) {
					k := j*int64(s.Channels) + int64(c)
					if k >= total || ctx.Err() != nil {
						break
					}
					at := pubStart.Add(time.Duration(float64(k) / s.Rate * float64(time.Second)))
					if d := time.Until(at); d > 0 {
						sleepCtx(ctx, d)
					}
					t0 := time.Now()
					err := api.trigger(channel(c), benchPayload(p, seq, t0, s.Size))
					pubLat.Record(time.Since(t0))
					seq++
					if err != nil {
						failedOn[c][p]++
						pubFailed.Add(1)
						errs.add(fmt.Errorf("publish: %w", err))
						continue
					}
					published.Add(1)
				}
				sentOn[c][p] = seq
			})
		}
	}
	pubs.Wait()
	pubSecs := time.Since(pubStart).Seconds()

	var expected uint64
	for c := range sentOn {
		for p := range sentOn[c] {
			expected += uint64(sentOn[c][p]-failedOn[c][p]) * uint64(subsOn[c])
		}
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
	readers.stop()
	m.finish(&res)

	var lost, reordered int64
	for _, sb := range subs {
		if sb == nil {
			continue
		}
		for p := range sb.tracks {
			lost += max(sb.tracks[p].lost(sentOn[sb.ch][p])-failedOn[sb.ch][p], 0)
			reordered += int64(sb.tracks[p].reordered)
		}
	}
	var allSubs Histogram
	var incomplete int64
	for c := range stats {
		for p := range stats[c] {
			for seq := int64(0); seq < min(sentOn[c][p], perStream); seq++ {
				ms := &stats[c][p][seq]
				switch got := ms.got.Load(); {
				case got == subsOn[c]:
					allSubs.Record(time.Duration(ms.worst.Load()))
				case got > 0 || failedOn[c][p] == 0:
					incomplete++
				}
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
	res.add("out_of_order", "out of order (within a publisher stream)", float64(reordered), "", "lower")
	res.add("incomplete_messages", "messages not delivered to every subscriber", float64(incomplete), "", "lower")
	res.add("dropped", "subscribers dropped by the server", float64(dropped.Load()), "", "lower")
	if o := other.Load(); o > 0 {
		res.add("other_frames", "unexpected frames", float64(o), "", "lower")
	}
	res.Latencies = []Latency{
		lat.merged().Summary("publish→delivery"),
		allSubs.Summary("publish→all subscribers"),
		pubLat.Summary("publish API call"),
		st.setup.Summary("connect+subscribe"),
	}
	res.Errors = append(res.Errors, errs.lines()...)
	return res
}
