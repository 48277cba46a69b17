package bench

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
)

// serverFrame builds an unmasked frame as a server sends it.
func serverFrame(op byte, fin bool, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	switch n := len(payload); {
	case n <= 125:
		b = append(b, byte(n))
	case n <= 0xffff:
		b = append(b, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, payload...)
}

type gotFrame struct {
	op      byte
	fin     bool
	payload string
}

func feedAll(t *testing.T, chunks [][]byte) []gotFrame {
	t.Helper()
	var p frameParser
	var got []gotFrame
	for _, c := range chunks {
		err := p.feed(c, func(op byte, fin bool, payload []byte) error {
			got = append(got, gotFrame{op, fin, string(payload)})
			return nil
		})
		if err != nil {
			t.Fatalf("feed: %v", err)
		}
	}
	if len(p.pending) != 0 {
		t.Fatalf("%d bytes left pending", len(p.pending))
	}
	return got
}

// Every split of a stream of frames (short, 16-bit and 64-bit lengths, control, fragments)
// yields the same frames.
func TestFrameParserEverySplit(t *testing.T) {
	small := []gotFrame{{1, true, `{"event":"a"}`}, {9, true, "ping"}, {1, false, "frag"}, {0, true, "ment"},
		{1, true, strings.Repeat("x", 300)}, {8, true, "\x03\xe8"}}
	big := []gotFrame{{1, true, "a"}, {2, true, strings.Repeat("y", 70000)}, {1, true, "b"}}
	for _, tc := range []struct {
		frames      []gotFrame
		splitStride int
		steps       []int
	}{{small, 1, []int{1, 7, 4096}}, {big, 997, []int{4096, 65536}}} {
		var stream []byte
		for _, f := range tc.frames {
			stream = append(stream, serverFrame(f.op, f.fin, []byte(f.payload))...)
		}
		for split := 0; split <= len(stream); split += tc.splitStride {
			for _, step := range tc.steps {
				chunks := [][]byte{stream[:split]}
				for rest := stream[split:]; len(rest) > 0; {
					k := min(step, len(rest))
					chunks = append(chunks, rest[:k])
					rest = rest[k:]
				}
				if got := feedAll(t, chunks); fmt.Sprint(got) != fmt.Sprint(tc.frames) {
					t.Fatalf("split %d step %d: got %d frames, want %d", split, step, len(got), len(tc.frames))
				}
			}
		}
	}
}

func TestFrameParserRefusals(t *testing.T) {
	for name, b := range map[string][]byte{
		"masked":          {0x81, 0x81, 1, 2, 3, 4, 'x'},
		"reserved bits":   {0xc1, 0x01, 'x'},
		"long control":    append([]byte{0x89, 126, 0, 126}, make([]byte, 126)...),
		"fragmented ping": {0x09, 0x00},
		"huge":            {0x82, 127, 0, 0, 0, 1, 0, 0, 0, 0},
	} {
		var p frameParser
		if err := p.feed(b, func(byte, bool, []byte) error { return nil }); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestClientFrameIsMaskedAndDecodes(t *testing.T) {
	for _, n := range []int{0, 5, 125, 126, 65535, 65536} {
		payload := bytes.Repeat([]byte{'p'}, n)
		f := clientFrame(0x1, payload)
		if f[0] != 0x81 || f[1]&0x80 == 0 {
			t.Fatalf("n=%d: header %x", n, f[:2])
		}
		// Unmask and parse as a server frame to check lengths and payload.
		h := 2
		switch f[1] & 0x7f {
		case 126:
			h = 4
		case 127:
			h = 10
		}
		key := f[h : h+4]
		plain := append(append([]byte{f[0], f[1] &^ 0x80}, f[2:h]...), f[h+4:]...)
		for i := range plain[h:] {
			plain[h+i] ^= key[i&3]
		}
		op, fin, got, used, err := parseFrame(plain)
		if err != nil || op != 1 || !fin || used != len(plain) || !bytes.Equal(got, payload) {
			t.Fatalf("n=%d: op %d fin %v used %d/%d err %v", n, op, fin, used, len(plain), err)
		}
	}
}

func FuzzFrameParser(f *testing.F) {
	f.Add([]byte{0x81, 0x03, 'a', 'b', 'c', 0x89, 0x00}, uint8(2))
	f.Add(serverFrame(1, true, bytes.Repeat([]byte{'z'}, 200)), uint8(100))
	f.Add([]byte{0x82, 127, 0, 0, 0, 0, 0, 0, 0, 1, 'x'}, uint8(3))
	f.Fuzz(func(t *testing.T, stream []byte, split uint8) {
		// Whole or split, the parser must see the same frames (or fail the same way).
		collect := func(chunks ...[]byte) (out []string, err error) {
			var p frameParser
			for _, c := range chunks {
				if err = p.feed(c, func(op byte, fin bool, pl []byte) error {
					out = append(out, fmt.Sprint(op, fin, string(pl)))
					return nil
				}); err != nil {
					return out, err
				}
			}
			return out, nil
		}
		s := min(int(split), len(stream))
		a, errA := collect(stream)
		b, errB := collect(stream[:s], stream[s:])
		if (errA == nil) != (errB == nil) || (errA == nil && fmt.Sprint(a) != fmt.Sprint(b)) {
			t.Fatalf("split %d changed the result: %v/%v vs %v/%v", s, a, errA, b, errB)
		}
	})
}
