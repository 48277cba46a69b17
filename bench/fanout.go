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

// leadingInt parses the decimal digits at the start of b (at most 19, so no overflow) and
// returns the rest.
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
	f := newFanoutRun(r, name, s)
	defer f.readers.stop()
	m := r.monitor(name, f.delivered.Load, func() string {
		return fmt.Sprintf("subscribed %d", f.st.established.Load())
	})
	f.subscribe(ctx)
	f.publish(ctx)
	pubSecs := time.Since(f.pubStart).Seconds()
	expected := f.expected()
	deliverSecs := f.drain(ctx, expected).Sub(f.pubStart).Seconds()
	f.readers.stop()
	m.finish(&f.res)
	f.report(expected, pubSecs, deliverSecs)
	return f.res
}

// fanoutRun is one fan-out run: its clients, and the tallies its phases share.
type fanoutRun struct {
	r         *runner
	s         Sizes
	n         int   // subscribers, after capSockets
	total     int64 // messages to publish
	P         int   // publisher streams per channel
	perStream int64 // messages per stream followed in stats
	res       Result
	ws        *wsClient
	api       *apiClient
	errs      *errorLog
	readers   *readerGroup

	// Subscriber side.
	st                     rampStats
	stats                  [][][]msgStat // [channel][stream][seq]
	subsOn                 []int32       // subscribers per channel
	subs                   []*fanoutSub
	subsMu                 sync.Mutex
	delivered, dups, other counter
	lat                    shardedHist
	dropped                atomic.Uint64

	// Publisher side.
	published, pubFailed atomic.Int64
	sentOn, failedOn     [][]int64 // [channel][stream]: messages sent, and failed among them
	pubLat               Histogram
	pubStart             time.Time
}

// fanoutSub is one subscriber socket: its channel and the order tracker of each of its streams.
type fanoutSub struct {
	ch     int
	tracks []seqTracker // one per stream of the channel
}

// fanoutChannel names the k-th fan-out channel.
func fanoutChannel(k int) string { return fmt.Sprintf("bench-fanout-%d", k) }

// newFanoutRun is the setup phase: the Result's title and params, clients and tally tables.
func newFanoutRun(r *runner, name string, s Sizes) *fanoutRun {
	n := r.capSockets(s.Subscribers, name)
	total := int64(math.Floor(s.Rate * s.Duration.Seconds()))
	P := s.Publishers
	f := &fanoutRun{r: r, s: s, n: n, total: total, P: P}
	f.res = Result{Scenario: "fanout", Name: name,
		Title: fmt.Sprintf("%s subscribers on %d channel(s), %g msg/s for %s, %d-byte payload (%s deliveries/s offered)",
			groupThousands(int64(n)), s.Channels, s.Rate, s.Duration, s.Size, groupThousands(int64(s.Rate*float64(n)))),
		Params: params("subscribers", n, "channels", s.Channels, "rate", s.Rate, "duration", s.Duration,
			"size", s.Size, "messages", total, "publishers_per_channel", P),
		RateLabel: "deliveries",
	}
	f.ws = newWSClient(r.e, r.o.Target.Insecure, n)
	f.api = newAPIClient(r.e, r.o.Target.Insecure, s.Channels*P)
	f.errs = newErrorLog()
	f.readers = newReaderGroup(r.e)

	// Message k goes to channel k%C; the channel's j-th message (j = k/C) to stream j%P as that
	// stream's seq j/P.
	f.perStream = total/int64(s.Channels*P) + 1
	f.stats = make([][][]msgStat, s.Channels)
	for c := range f.stats {
		f.stats[c] = make([][]msgStat, P)
		for p := range f.stats[c] {
			f.stats[c][p] = make([]msgStat, f.perStream)
		}
	}
	f.subsOn = make([]int32, s.Channels)
	f.subs = make([]*fanoutSub, n)
	f.sentOn = make([][]int64, s.Channels)
	f.failedOn = make([][]int64, s.Channels)
	for c := range f.sentOn {
		f.sentOn[c], f.failedOn[c] = make([]int64, P), make([]int64, P)
	}
	return f
}

// subscribe is the connect phase: it ramps up the subscribers and starts each one's reader.
func (f *fanoutRun) subscribe(ctx context.Context) {
	f.r.ramp(ctx, f.ws, f.n, f.s.Concurrency, func(i int) string { return fanoutChannel(i % f.s.Channels) }, f.errs, &f.st,
		func(i int, c *wsConn) {
			sb := &fanoutSub{ch: i % f.s.Channels, tracks: make([]seqTracker, f.P)}
			for p := range sb.tracks {
				sb.tracks[p] = newSeqTracker()
			}
			f.subsMu.Lock()
			f.subs[i] = sb
			f.subsOn[sb.ch]++
			f.subsMu.Unlock()
			shard := i
			f.readers.start(c, func(msg []byte) { f.receive(sb, shard, msg) }, func(err error) {
				f.dropped.Add(1)
				f.errs.add(fmt.Errorf("subscriber closed: %w", err))
			})
		})
}

// receive is the per-frame delivery check of subscriber sb: order, duplicates, latency.
func (f *fanoutRun) receive(sb *fanoutSub, shard int, msg []byte) {
	stream, seq, sent, ok := parsePayload(msg)
	if !ok || stream >= f.P {
		f.other.Add(shard, 1)
		return
	}
	d := time.Duration(time.Now().UnixNano() - sent)
	if !sb.tracks[stream].add(seq) {
		f.dups.Add(shard, 1)
		return
	}
	f.delivered.Add(shard, 1)
	f.lat.Record(shard, d)
	if seq < f.perStream {
		ms := &f.stats[sb.ch][stream][seq]
		ms.got.Add(1)
		for {
			w := ms.worst.Load()
			if int64(d) <= w || ms.worst.CompareAndSwap(w, int64(d)) {
				break
			}
		}
	}
}

// publish is the publish phase: every stream of every channel publishes at its share of the
// offered rate until all messages are out; it returns when the last stream is done.
func (f *fanoutRun) publish(ctx context.Context) {
	f.pubStart = time.Now()
	var pubs sync.WaitGroup
	for c := 0; c < f.s.Channels; c++ {
		for p := 0; p < f.P; p++ {
			pubs.Go(func() { f.publishStream(ctx, c, p) })
		}
	}
	pubs.Wait()
}

// publishStream is one publisher stream: stream p of channel c, one request at a time, each
// sent at its slot of the global schedule.
func (f *fanoutRun) publishStream(ctx context.Context, c, p int) {
	var seq int64
	for j := int64(p); ; j += int64(f.P) {
		k := j*int64(f.s.Channels) + int64(c)
		if k >= f.total || ctx.Err() != nil {
			break
		}
		at := f.pubStart.Add(time.Duration(float64(k) / f.s.Rate * float64(time.Second)))
		if d := time.Until(at); d > 0 {
			sleepCtx(ctx, d)
		}
		t0 := time.Now()
		err := f.api.trigger(fanoutChannel(c), benchPayload(p, seq, t0, f.s.Size))
		f.pubLat.Record(time.Since(t0))
		seq++
		if err != nil {
			f.failedOn[c][p]++
			f.pubFailed.Add(1)
			f.errs.add(fmt.Errorf("publish: %w", err))
			continue
		}
		f.published.Add(1)
	}
	f.sentOn[c][p] = seq
}

// expected counts the deliveries owed: each accepted publish times its channel's subscribers.
func (f *fanoutRun) expected() uint64 {
	var expected uint64
	for c := range f.sentOn {
		for p := range f.sentOn[c] {
			expected += uint64(f.sentOn[c][p]-f.failedOn[c][p]) * uint64(f.subsOn[c])
		}
	}
	return expected
}

// drain is the drain phase: wait until every delivery arrived, or nothing moved for 3 s (max
// 20 s). It returns the time of the last delivery progress.
func (f *fanoutRun) drain(ctx context.Context, expected uint64) time.Time {
	lastCount, lastMove := f.delivered.Load(), time.Now()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline) && ctx.Err() == nil; {
		c := f.delivered.Load()
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
	return lastMove
}

// losses is the per-subscriber collection: deliveries lost (failed publishes aside) and out of
// order, over all subscribers and streams.
func (f *fanoutRun) losses() (lost, reordered int64) {
	for _, sb := range f.subs {
		if sb == nil {
			continue
		}
		for p := range sb.tracks {
			lost += max(sb.tracks[p].lost(f.sentOn[sb.ch][p])-f.failedOn[sb.ch][p], 0)
			reordered += int64(sb.tracks[p].reordered)
		}
	}
	return lost, reordered
}

// completeness is the per-message collection: the latency to the slowest subscriber of every
// message all subscribers got, and how many messages some subscriber missed.
func (f *fanoutRun) completeness() (allSubs *Histogram, incomplete int64) {
	allSubs = &Histogram{}
	for c := range f.stats {
		for p := range f.stats[c] {
			for seq := int64(0); seq < min(f.sentOn[c][p], f.perStream); seq++ {
				ms := &f.stats[c][p][seq]
				switch got := ms.got.Load(); {
				case got == f.subsOn[c]:
					allSubs.Record(time.Duration(ms.worst.Load()))
				case got > 0 || f.failedOn[c][p] == 0:
					incomplete++
				}
			}
		}
	}
	return allSubs, incomplete
}

// report is the result phase: it fills f.res with the counts, rates and latencies.
func (f *fanoutRun) report(expected uint64, pubSecs, deliverSecs float64) {
	lost, reordered := f.losses()
	allSubs, incomplete := f.completeness()
	res := &f.res
	d := f.delivered.Load()
	res.add("subscribed", "subscribers", float64(f.st.established.Load()), "", "higher")
	res.add("subscribe_failed", "subscribe failures", float64(f.st.failed.Load()), "", "lower")
	res.add("published", "messages published", float64(f.published.Load()), "", "")
	res.add("publish_failed", "publish failures", float64(f.pubFailed.Load()), "", "lower")
	res.add("published_per_s", "messages published per second", float64(f.published.Load())/pubSecs, "/s", "higher")
	res.add("expected", "deliveries expected", float64(expected), "", "")
	res.add("delivered", "deliveries received", float64(d), "", "higher")
	res.add("delivered_per_s", "deliveries per second", float64(d)/deliverSecs, "/s", "higher")
	res.add("lost", "lost", float64(lost), "", "lower")
	res.add("duplicated", "duplicated", float64(f.dups.Load()), "", "lower")
	res.add("out_of_order", "out of order (within a publisher stream)", float64(reordered), "", "lower")
	res.add("incomplete_messages", "messages not delivered to every subscriber", float64(incomplete), "", "lower")
	res.add("dropped", "subscribers dropped by the server", float64(f.dropped.Load()), "", "lower")
	if o := f.other.Load(); o > 0 {
		res.add("other_frames", "unexpected frames", float64(o), "", "lower")
	}
	res.Latencies = []Latency{
		f.lat.merged().Summary("publish→delivery"),
		allSubs.Summary("publish→all subscribers"),
		f.pubLat.Summary("publish API call"),
		f.st.setup.Summary("connect+subscribe"),
	}
	res.Errors = append(res.Errors, f.errs.lines()...)
}
