package ws

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// clientFrame builds a masked client frame as browsers send them.
func clientFrame(fin bool, op Opcode, payload []byte, mask [4]byte) []byte {
	b0 := byte(op)
	if fin {
		b0 |= 0x80
	}
	var out []byte
	n := len(payload)
	switch {
	case n <= 125:
		out = append(out, b0, 0x80|byte(n))
	case n <= 0xFFFF:
		out = append(out, b0, 0x80|126, byte(n>>8), byte(n))
	default:
		out = append(out, b0, 0x80|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	out = append(out, mask[:]...)
	for i, c := range payload {
		out = append(out, c^mask[i&3])
	}
	return out
}

type msg struct {
	op      Opcode
	payload string
}

func feedAll(p *Parser, chunks ...[]byte) ([]msg, error) {
	var got []msg
	for _, c := range chunks {
		err := p.Feed(append([]byte(nil), c...), func(op Opcode, b []byte) error {
			got = append(got, msg{op, string(b)})
			return nil
		})
		if err != nil {
			return got, err
		}
	}
	return got, nil
}

func TestParserMessages(t *testing.T) {
	m := [4]byte{1, 2, 3, 4}
	var stream []byte
	stream = append(stream, clientFrame(true, OpText, []byte(`{"event":"pusher:ping"}`), m)...)
	stream = append(stream, clientFrame(false, OpText, []byte("hel"), m)...)
	stream = append(stream, clientFrame(true, OpPing, []byte("p"), m)...) // control between fragments
	stream = append(stream, clientFrame(true, OpContinuation, []byte("lo"), m)...)
	stream = append(stream, clientFrame(true, OpText, bytes.Repeat([]byte("x"), 300), m)...)
	stream = append(stream, clientFrame(true, OpText, bytes.Repeat([]byte("y"), 70000), m)...)
	stream = append(stream, clientFrame(true, OpText, nil, m)...)
	want := []msg{{OpText, `{"event":"pusher:ping"}`}, {OpPing, "p"}, {OpText, "hello"}, {OpText, string(bytes.Repeat([]byte("x"), 300))},
		{OpText, string(bytes.Repeat([]byte("y"), 70000))}, {OpText, ""}}
	// The same messages whether the bytes come whole, one at a time, or in odd pieces.
	for _, size := range []int{len(stream), 1, 3, 7, 512, 4096} {
		p := Parser{MaxMessage: 100000}
		var chunks [][]byte
		for i := 0; i < len(stream); i += size {
			chunks = append(chunks, stream[i:min(i+size, len(stream))])
		}
		got, err := feedAll(&p, chunks...)
		if err != nil {
			t.Fatalf("chunk %d: %v", size, err)
		}
		if len(got) != len(want) {
			t.Fatalf("chunk %d: %d messages", size, len(got))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("chunk %d: message %d = %v %.20q", size, i, got[i].op, got[i].payload)
			}
		}
	}
}

func TestParserViolations(t *testing.T) {
	m := [4]byte{9, 8, 7, 6}
	unmasked := []byte{0x81, 0x02, 'h', 'i'}
	cases := []struct {
		name  string
		input []byte
		code  int
	}{
		{"unmasked", unmasked, 1002},
		{"rsv bits", append([]byte{0xC1}, clientFrame(true, OpText, []byte("x"), m)[1:]...), 1002},
		{"binary", clientFrame(true, OpBinary, []byte("x"), m), 1003},
		{"too big", clientFrame(true, OpText, bytes.Repeat([]byte("a"), 101), m), 1009},
		{"bad utf8", clientFrame(true, OpText, []byte{0xff, 0xfe}, m), 1007},
		{"long control", clientFrame(true, OpPing, bytes.Repeat([]byte("a"), 126), m), 1002},
		{"fragmented control", clientFrame(false, OpPing, nil, m), 1002},
		{"lone continuation", clientFrame(true, OpContinuation, []byte("x"), m), 1002},
		{"unknown opcode", clientFrame(true, Opcode(3), nil, m), 1002},
		{"text inside fragments", append(clientFrame(false, OpText, []byte("a"), m), clientFrame(true, OpText, []byte("b"), m)...), 1002},
		{"bad close code", clientFrame(true, OpClose, []byte{0x03, 0xe8 + 4}, m), 1002},
		{"one-byte close", clientFrame(true, OpClose, []byte{0x03}, m), 1002},
		{"fragments over limit", append(clientFrame(false, OpText, bytes.Repeat([]byte("a"), 60), m), clientFrame(true, OpContinuation, bytes.Repeat([]byte("a"), 60), m)...), 1009},
	}
	for _, c := range cases {
		p := Parser{MaxMessage: 100}
		_, err := feedAll(&p, c.input)
		var ce *CloseError
		if !errors.As(err, &ce) || ce.Code != c.code {
			t.Errorf("%s: %v, want close %d", c.name, err, c.code)
		}
	}
}

// The whole-frame path hands out the caller's bytes: no allocation per message.
func TestParserNoAllocsForWholeFrames(t *testing.T) {
	frame := clientFrame(true, OpText, []byte(`{"event":"pusher:ping","data":{}}`), [4]byte{1, 2, 3, 4})
	buf := make([]byte, len(frame))
	p := Parser{}
	emit := func(Opcode, []byte) error { return nil }
	allocs := testing.AllocsPerRun(100, func() {
		copy(buf, frame)
		if err := p.Feed(buf, emit); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per message", allocs)
	}
}

func TestAppendFrameLengths(t *testing.T) {
	for _, n := range []int{0, 125, 126, 65535, 65536} {
		f := AppendFrame(nil, OpText, bytes.Repeat([]byte("z"), n))
		hdr := map[bool]int{true: 2}[n <= 125]
		if n > 125 && n <= 65535 {
			hdr = 4
		} else if n > 65535 {
			hdr = 10
		}
		if len(f) != hdr+n || f[0] != 0x81 {
			t.Errorf("n=%d: len %d first %x", n, len(f), f[0])
		}
	}
	c := AppendClose(nil, 4200, string(bytes.Repeat([]byte("é"), 100)))
	if len(c)-2 > 125 || binary.BigEndian.Uint16(c[2:4]) != 4200 {
		t.Fatalf("close frame %d bytes", len(c))
	}
}

// FuzzParser: the same messages and the same error whether the input arrives whole or split.
func FuzzParser(f *testing.F) {
	m := [4]byte{1, 2, 3, 4}
	f.Add(clientFrame(true, OpText, []byte(`{"event":"x"}`), m), uint8(3))
	f.Add(append(clientFrame(false, OpText, []byte("a"), m), clientFrame(true, OpContinuation, []byte("b"), m)...), uint8(1))
	f.Add(clientFrame(true, OpClose, []byte{0x03, 0xe8}, m), uint8(2))
	f.Add([]byte{0x81, 0xFF, 0, 0, 0, 0, 0, 0, 0, 1}, uint8(5))
	f.Fuzz(func(t *testing.T, data []byte, split uint8) {
		whole := Parser{MaxMessage: 1 << 16}
		a, errA := feedAll(&whole, data)
		// Split at varying points derived from split: sizes cycle 1..split+1.
		var chunks [][]byte
		step := int(split)%13 + 1
		for i, k := 0, 0; i < len(data); k++ {
			n := (k*step)%(int(split)+1) + 1
			chunks = append(chunks, data[i:min(i+n, len(data))])
			i += n
		}
		pieces := Parser{MaxMessage: 1 << 16}
		b, errB := feedAll(&pieces, chunks...)
		if (errA == nil) != (errB == nil) || len(a) != len(b) {
			t.Fatalf("whole: %d msgs %v; in %d pieces: %d msgs %v", len(a), errA, len(chunks), len(b), errB)
		}
		if errA != nil {
			var ca, cb *CloseError
			if !errors.As(errA, &ca) || !errors.As(errB, &cb) || ca.Code != cb.Code {
				t.Fatalf("errors differ: %v / %v", errA, errB)
			}
		}
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("message %d differs", i)
			}
		}
	})
}

// Payload undoes AppendFrame for every header length (7-bit, 16-bit and 64-bit sizes).
func TestPayload(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 65535, 65536} {
		p := bytes.Repeat([]byte{'x'}, n)
		if got := Payload(AppendFrame(nil, OpText, p)); !bytes.Equal(got, p) {
			t.Errorf("%d-byte payload: got %d bytes", n, len(got))
		}
	}
	if Payload([]byte{0x81, 126, 0}) != nil || Payload(nil) != nil {
		t.Error("a truncated header has no payload")
	}
}
