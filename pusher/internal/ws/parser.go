package ws

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// CloseError is a protocol violation found while parsing, with the close code RFC 6455 assigns.
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string { return fmt.Sprintf("websocket %d: %s", e.Code, e.Reason) }

// Close codes the parser and Conn use (RFC 6455 §7.4.1).
const (
	CloseNormal          = 1000
	CloseGoingAway       = 1001
	CloseProtocolError   = 1002
	CloseUnsupportedData = 1003
	CloseNoStatus        = 1005
	CloseAbnormal        = 1006
	CloseInvalidPayload  = 1007
	CloseTooBig          = 1009
)

func protocolError(format string, args ...any) error {
	return &CloseError{Code: CloseProtocolError, Reason: fmt.Sprintf(format, args...)}
}

// maxHeader is the longest client frame header: 2 bytes, 8 of extended length, 4 of mask.
const maxHeader = 14

// Parser turns the bytes a client sends into complete messages, incrementally and without doing
// any IO: the caller feeds whatever its read returned and gets callbacks for whole messages, so
// the same parser serves a read goroutine today and an epoll loop later. Between frames its state
// is a few integers; it holds a buffer only while a header, a fragmented message or a frame that
// straddles two reads is incomplete.
type Parser struct {
	// MaxMessage is the largest message accepted; larger ones fail with 1009 as soon as a header
	// announces them, before anything is buffered. Zero means 64 KiB.
	MaxMessage int

	hdr  [maxHeader]byte
	hdrN int // bytes of a partial header held in hdr

	inFrame bool
	op      Opcode
	fin     bool
	mask    [4]byte
	maskPos int
	remain  int // payload bytes of the current frame still to come

	msgOp Opcode // opcode of a message being reassembled; 0 when none
	msg   []byte // reassembled payload while a message spans frames or reads
	ctrl  []byte // payload of a control frame that spans reads
}

func (p *Parser) maxMessage() int {
	if p.MaxMessage > 0 {
		return p.MaxMessage
	}
	return 64 << 10
}

// Feed consumes data and calls emit for every complete message (text, binary) and control frame
// (close, ping, pong), in order. The payload passed to emit is valid only during the call. Feed
// unmasks payloads in place, so it modifies data. After an error the parser must not be fed again.
func (p *Parser) Feed(data []byte, emit func(op Opcode, payload []byte) error) error {
	for len(data) > 0 {
		if !p.inFrame {
			n, err := p.readHeader(data)
			if err != nil {
				return err
			}
			data = data[n:]
			if !p.inFrame {
				return nil // header still incomplete
			}
			if p.remain == 0 {
				if err := p.endFrame(nil, emit); err != nil {
					return err
				}
				continue
			}
		}
		take := min(p.remain, len(data))
		chunk := data[:take]
		data = data[take:]
		p.unmask(chunk)
		p.remain -= take

		switch {
		case p.op.isControl():
			if p.remain == 0 && p.ctrl == nil {
				if err := p.endFrame(chunk, emit); err != nil {
					return err
				}
				continue
			}
			if p.ctrl == nil {
				p.ctrl = make([]byte, 0, len(chunk)+p.remain)
			}
			p.ctrl = append(p.ctrl, chunk...)
		case p.remain == 0 && p.fin && p.msg == nil:
			// The common case: a whole unfragmented message inside one read. No copy.
			if err := p.endFrame(chunk, emit); err != nil {
				return err
			}
			continue
		default:
			if p.msg == nil {
				// Size the buffer for the rest of this frame at once (bounded by the header check).
				p.msg = make([]byte, 0, len(chunk)+p.remain)
			}
			p.msg = append(p.msg, chunk...)
		}
		if p.remain == 0 {
			if err := p.endFrame(nil, emit); err != nil {
				return err
			}
		}
	}
	return nil
}

// readHeader consumes header bytes from data, returning how many it took. It sets inFrame once a
// whole header has arrived.
func (p *Parser) readHeader(data []byte) (int, error) {
	// Refuse an unmasked frame as soon as its second byte is here, before waiting for a mask
	// that will never come (RFC 6455 §5.1).
	var second int = -1
	switch {
	case p.hdrN >= 2:
		second = int(p.hdr[1])
	case p.hdrN == 1 && len(data) >= 1:
		second = int(data[0])
	case p.hdrN == 0 && len(data) >= 2:
		second = int(data[1])
	}
	if second >= 0 && second&0x80 == 0 {
		return 0, protocolError("client frame is not masked")
	}
	var h []byte
	used := 0
	if p.hdrN == 0 && len(data) >= 2 && len(data) >= headerLen(data) {
		h = data // whole header in this read: parse in place
	} else {
		for p.hdrN < 2 || p.hdrN < headerLen(p.hdr[:p.hdrN]) {
			if used == len(data) {
				return used, nil
			}
			p.hdr[p.hdrN] = data[used]
			p.hdrN++
			used++
		}
		h = p.hdr[:p.hdrN]
	}
	hl := headerLen(h)
	if h[0]&0x70 != 0 {
		return 0, protocolError("reserved bits set without a negotiated extension")
	}
	op := Opcode(h[0] & 0x0F)
	fin := h[0]&0x80 != 0
	var length uint64
	switch l := h[1] & 0x7F; l {
	case 126:
		length = uint64(binary.BigEndian.Uint16(h[2:4]))
	case 127:
		length = binary.BigEndian.Uint64(h[2:10])
		if length>>63 != 0 {
			return 0, protocolError("frame length has the high bit set")
		}
	default:
		length = uint64(l)
	}
	copy(p.mask[:], h[hl-4:hl])

	switch op {
	case OpClose, OpPing, OpPong:
		if !fin || length > 125 {
			return 0, protocolError("control frame fragmented or longer than 125 bytes")
		}
	case OpText, OpBinary:
		if p.msgOp != 0 {
			return 0, protocolError("new message before the fragmented one ended")
		}
		if op == OpBinary {
			return 0, &CloseError{Code: CloseUnsupportedData, Reason: "binary frames are not part of the Pusher protocol"}
		}
		p.msgOp = op
	case OpContinuation:
		if p.msgOp == 0 {
			return 0, protocolError("continuation frame without a message to continue")
		}
	default:
		return 0, protocolError("unknown opcode %d", op)
	}
	if !op.isControl() && uint64(len(p.msg))+length > uint64(p.maxMessage()) {
		return 0, &CloseError{Code: CloseTooBig, Reason: fmt.Sprintf("message larger than %d bytes", p.maxMessage())}
	}
	p.op, p.fin, p.remain, p.maskPos, p.inFrame = op, fin, int(length), 0, true
	if p.hdrN > 0 {
		p.hdrN = 0
		return used, nil
	}
	return hl, nil
}

// headerLen is the full header length announced by the first two bytes of h (len(h) ≥ 2).
func headerLen(h []byte) int {
	if len(h) < 2 {
		return 2
	}
	n := 2 + 4
	switch h[1] & 0x7F {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	return n
}

func (p *Parser) unmask(b []byte) {
	m, pos := p.mask, p.maskPos
	for i := range b {
		b[i] ^= m[pos&3]
		pos++
	}
	p.maskPos = pos & 3
}

// endFrame finishes a frame whose payload is complete. payload is the frame's bytes when they
// were not buffered.
func (p *Parser) endFrame(payload []byte, emit func(Opcode, []byte) error) error {
	p.inFrame = false
	if p.op.isControl() {
		if p.ctrl != nil {
			payload = p.ctrl
		}
		p.ctrl = nil
		if p.op == OpClose {
			if err := validClosePayload(payload); err != nil {
				return err
			}
		}
		return emit(p.op, payload)
	}
	if !p.fin {
		return nil
	}
	if p.msg != nil {
		payload = p.msg
	}
	op := p.msgOp
	p.msgOp, p.msg = 0, nil // release the reassembly buffer: idle conns hold none
	if op == OpText && !utf8.Valid(payload) {
		return &CloseError{Code: CloseInvalidPayload, Reason: "text message is not valid UTF-8"}
	}
	return emit(op, payload)
}

// validClosePayload applies RFC 6455 §5.5.1 and §7.4: empty, or a valid code and UTF-8 reason.
func validClosePayload(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if len(b) == 1 {
		return protocolError("close frame with a 1-byte payload")
	}
	code := int(binary.BigEndian.Uint16(b))
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1011, code >= 3000 && code <= 4999:
	default:
		return protocolError("invalid close code %d", code)
	}
	if !utf8.Valid(b[2:]) {
		return &CloseError{Code: CloseInvalidPayload, Reason: "close reason is not valid UTF-8"}
	}
	return nil
}
