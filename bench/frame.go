package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
)

// frameParser splits the byte stream a server sends a client into WebSocket frames (RFC 6455
// § 5.2). It does no I/O: bytes in, frames out, keeping only the tail of a frame that straddles
// two reads. The bench uses it where tens of thousands of sockets are read by a few epoll loops
// instead of a goroutine and a buffered reader each.
type frameParser struct {
	pending []byte // an incomplete frame carried to the next feed
}

// maxFrame bounds one frame's payload; bench traffic is far smaller, so anything bigger is a
// broken stream, not a message.
const maxFrame = 1 << 20

var errMaskedServerFrame = errors.New("websocket: server frame is masked (RFC 6455 § 5.1)")

// feed parses data, after any bytes pending from earlier feeds, and calls emit for each complete
// frame. payload is valid only during the call. An error from emit or a malformed frame stops
// parsing and is returned.
func (p *frameParser) feed(data []byte, emit func(op byte, fin bool, payload []byte) error) error {
	if len(p.pending) > 0 {
		p.pending = append(p.pending, data...)
		data = p.pending
	}
	for {
		op, fin, payload, n, err := parseFrame(data)
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
		if err := emit(op, fin, payload); err != nil {
			return err
		}
		data = data[n:]
	}
	switch {
	case len(data) == 0:
		p.pending = p.pending[:0]
		if cap(p.pending) > 4096 {
			p.pending = nil // an idle socket keeps no large buffer
		}
	case len(p.pending) > 0 && &data[0] == &p.pending[0]:
		// Nothing consumed from pending: it already holds exactly the remainder.
	default:
		p.pending = append(p.pending[:0], data...) // copy handles the overlap (memmove)
	}
	return nil
}

// parseFrame reads one frame from the start of b; n == 0 means b holds only part of it.
func parseFrame(b []byte) (op byte, fin bool, payload []byte, n int, err error) {
	if len(b) < 2 {
		return 0, false, nil, 0, nil
	}
	fin, op = b[0]&0x80 != 0, b[0]&0x0f
	if b[0]&0x70 != 0 {
		return 0, false, nil, 0, fmt.Errorf("websocket: reserved bits set (no extension negotiated)")
	}
	if b[1]&0x80 != 0 {
		return 0, false, nil, 0, errMaskedServerFrame
	}
	length, h := uint64(b[1]&0x7f), 2
	switch length {
	case 126:
		if len(b) < 4 {
			return 0, false, nil, 0, nil
		}
		length, h = uint64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return 0, false, nil, 0, nil
		}
		length, h = binary.BigEndian.Uint64(b[2:]), 10
	}
	if op >= 0x8 && (length > 125 || !fin) {
		return 0, false, nil, 0, fmt.Errorf("websocket: control frame fragmented or over 125 bytes")
	}
	if length > maxFrame {
		return 0, false, nil, 0, fmt.Errorf("websocket: %d-byte frame over the bench's %d limit", length, maxFrame)
	}
	if uint64(len(b)-h) < length {
		return 0, false, nil, 0, nil
	}
	end := h + int(length)
	return op, fin, b[h:end], end, nil
}

// clientFrame builds one masked client frame (clients must mask, RFC 6455 § 5.3).
func clientFrame(op byte, payload []byte) []byte {
	n := len(payload)
	b := make([]byte, 0, 14+n)
	b = append(b, 0x80|op)
	switch {
	case n <= 125:
		b = append(b, 0x80|byte(n))
	case n <= 0xffff:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	var key [4]byte
	binary.LittleEndian.PutUint32(key[:], rand.Uint32())
	b = append(b, key[:]...)
	for i, c := range payload {
		b = append(b, c^key[i&3])
	}
	return b
}
