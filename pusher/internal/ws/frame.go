package ws

import (
	"encoding/binary"
	"unicode/utf8"
)

// Opcode is a WebSocket frame opcode (RFC 6455 §5.2).
type Opcode byte

// The opcodes RFC 6455 defines.
const (
	OpContinuation Opcode = 0x0
	OpText         Opcode = 0x1
	OpBinary       Opcode = 0x2
	OpClose        Opcode = 0x8
	OpPing         Opcode = 0x9
	OpPong         Opcode = 0xA
)

func (op Opcode) isControl() bool { return op&0x8 != 0 }

// AppendFrame appends one unmasked, final server frame. The result is meant to be built once per
// publish and shared by every recipient (docs/architecture.md "Encode once, write many").
func AppendFrame(dst []byte, op Opcode, payload []byte) []byte {
	return append(AppendHeader(dst, op, len(payload)), payload...)
}

// AppendHeader appends the header of an unmasked, final server frame with an n-byte payload, for
// callers that build the payload in place after it.
func AppendHeader(dst []byte, op Opcode, n int) []byte {
	b0 := 0x80 | byte(op)
	switch {
	case n <= 125:
		dst = append(dst, b0, byte(n))
	case n <= 0xFFFF:
		dst = append(dst, b0, 126, byte(n>>8), byte(n))
	default:
		dst = append(dst, b0, 127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	return dst
}

// AppendClose appends a close frame. The reason is cut to 123 bytes on a rune boundary, because a
// control frame's payload is at most 125 bytes including the 2-byte code (RFC 6455 §5.5).
func AppendClose(dst []byte, code int, reason string) []byte {
	if len(reason) > 123 {
		cut := 123
		for cut > 0 && !utf8.RuneStart(reason[cut]) {
			cut--
		}
		reason = reason[:cut]
	}
	payload := make([]byte, 2, 2+len(reason))
	binary.BigEndian.PutUint16(payload, uint16(code))
	payload = append(payload, reason...)
	return AppendFrame(dst, OpClose, payload)
}

// Payload is the payload of a server frame built by AppendFrame or AppendHeader (unmasked, one
// frame), for callers that log what they send; nil when frame is shorter than its header says.
func Payload(frame []byte) []byte {
	if len(frame) < 2 {
		return nil
	}
	hdr := 2
	switch frame[1] & 0x7f {
	case 126:
		hdr = 4
	case 127:
		hdr = 10
	}
	if len(frame) < hdr {
		return nil
	}
	return frame[hdr:]
}
