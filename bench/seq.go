package bench

// seqTracker checks one subscriber's view of a numbered stream: every message the publisher
// sent on the channel carries seq 0, 1, 2, ... and must arrive exactly once and in order
// (Pusher delivers a channel's events in publish order to each socket).
//
// Not safe for concurrent use: each subscriber's single read goroutine owns its tracker.
type seqTracker struct {
	seen      []uint64 // bitset of received seqs
	unique    uint64
	dups      uint64
	reordered uint64 // arrivals with a seq below one already received
	highest   int64
}

func newSeqTracker() seqTracker { return seqTracker{highest: -1} }

// add records one arrival and reports whether it was new (not a duplicate). Negative seqs are
// rejected as invalid.
func (s *seqTracker) add(seq int64) bool {
	if seq < 0 {
		return false
	}
	w := int(seq >> 6)
	if w >= len(s.seen) {
		grown := make([]uint64, max(w+1, 2*len(s.seen)))
		copy(grown, s.seen)
		s.seen = grown
	}
	bit := uint64(1) << uint(seq&63)
	if s.seen[w]&bit != 0 {
		s.dups++
		return false
	}
	s.seen[w] |= bit
	s.unique++
	if seq < s.highest {
		s.reordered++
	} else {
		s.highest = seq
	}
	return true
}

// lost is how many of the sent seqs 0..sent-1 never arrived.
func (s *seqTracker) lost(sent int64) int64 {
	var got int64
	for seq := int64(0); seq < sent; seq++ {
		w := int(seq >> 6)
		if w < len(s.seen) && s.seen[w]&(1<<uint(seq&63)) != 0 {
			got++
		}
	}
	return sent - got
}
