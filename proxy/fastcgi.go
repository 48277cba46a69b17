package proxy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// The FastCGI 1.0 wire format (fastcgi-spec, "FastCGI Specification", Open Market 1996). Section
// numbers below refer to it. Only what a Responder client needs is here: BEGIN_REQUEST, PARAMS
// and STDIN out; STDOUT, STDERR and END_REQUEST in.

const (
	fcgiVersion1 = 1 // §8: FCGI_VERSION_1

	fcgiBeginRequest = 1 // §8 record types
	fcgiEndRequest   = 3
	fcgiParams       = 4
	fcgiStdin        = 5
	fcgiStdout       = 6
	fcgiStderr       = 7

	fcgiResponder = 1 // §5.1 role
	fcgiKeepConn  = 1 // §5.1 flags: the application must not close the connection

	fcgiRequestComplete = 0 // §5.5 protocolStatus

	// fcgiRequestID is the only request id we use: one request per connection at a time, so
	// there is nothing to multiplex (§3.3 lets a client pick any non-zero id).
	fcgiRequestID = 1

	fcgiHeaderLen  = 8     // §3.3
	fcgiMaxContent = 65535 // contentLength is a uint16
)

// appendRecordHeader appends the 8-byte header of a record carrying n content bytes and no
// padding (§3.3: padding is optional, a hint for alignment).
func appendRecordHeader(b []byte, typ uint8, n int) []byte {
	return append(b, fcgiVersion1, typ, 0, fcgiRequestID, byte(n>>8), byte(n), 0, 0)
}

// appendBeginRequest appends FCGI_BEGIN_REQUEST for a Responder that keeps the connection (§5.1).
func appendBeginRequest(b []byte) []byte {
	b = appendRecordHeader(b, fcgiBeginRequest, 8)
	return append(b, 0, fcgiResponder, fcgiKeepConn, 0, 0, 0, 0, 0)
}

// appendStream appends content as records of type typ, split at the 65535-byte record limit.
// An empty content appends nothing; the caller closes a stream with an empty record (§3.3).
func appendStream(b []byte, typ uint8, content []byte) []byte {
	for len(content) > 0 {
		n := min(len(content), fcgiMaxContent)
		b = appendRecordHeader(b, typ, n)
		b = append(b, content[:n]...)
		content = content[n:]
	}
	return b
}

// appendPairLen encodes a name or value length: one byte below 128, else four bytes with the
// high bit set (§3.4).
func appendPairLen(b []byte, n int) []byte {
	if n < 128 {
		return append(b, byte(n))
	}
	return binary.BigEndian.AppendUint32(b, uint32(n)|1<<31)
}

// appendPair appends one name-value pair of the PARAMS stream (§3.4).
func appendPair[T string | []byte](b []byte, name string, value T) []byte {
	b = appendPairLen(b, len(name))
	b = appendPairLen(b, len(value))
	b = append(b, name...)
	return append(b, value...)
}

var (
	errFCGIVersion   = errors.New("fastcgi: record with unknown version")
	errFCGIRequestID = errors.New("fastcgi: record for another request id")
	errFCGIOverflow  = errors.New("fastcgi: upstream sent too big a header")
)

// fcgiReader reads the records of one response from a connection and hands out STDOUT bytes;
// STDERR goes to a callback and END_REQUEST ends the stream. It holds no buffer of its own:
// next returns slices of the bufio.Reader's buffer.
type fcgiReader struct {
	br      *bufio.Reader
	left    int // STDOUT content bytes of the current record not yet returned
	pad     int // padding after the current record
	discard int // bytes returned by the last next, consumed at the following call
	ended   bool
	// appStatus and protoStatus come from END_REQUEST (§5.5).
	appStatus   uint32
	protoStatus uint8
	stderr      func([]byte)
}

func (r *fcgiReader) reset(br *bufio.Reader, stderr func([]byte)) {
	*r = fcgiReader{br: br, stderr: stderr}
}

// next returns the next STDOUT bytes, at most max, waiting for at least one; io.EOF after
// END_REQUEST. The slice is valid until the next call.
func (r *fcgiReader) next(max int) ([]byte, error) {
	if r.discard > 0 {
		if _, err := r.br.Discard(r.discard); err != nil {
			return nil, err
		}
		r.discard = 0
	}
	for r.left == 0 {
		if r.ended {
			return nil, io.EOF
		}
		if r.pad > 0 {
			if _, err := r.br.Discard(r.pad); err != nil {
				return nil, err
			}
			r.pad = 0
		}
		if err := r.readHeader(); err != nil {
			return nil, err
		}
	}
	n := min(r.left, max, r.br.Size())
	if b := r.br.Buffered(); b > 0 {
		n = min(n, b) // hand out what has arrived rather than wait for the whole record
	}
	b, err := r.br.Peek(n)
	if err != nil {
		return nil, err
	}
	r.left -= n
	r.discard = n
	return b, nil
}

// ready reports whether next can make progress from what is already buffered, so a caller
// that only wants to gather arrived bytes does not wait on a script that is still running.
// Padding and the discard owed from the last call do not count.
func (r *fcgiReader) ready() bool {
	avail := r.br.Buffered() - r.discard
	if r.left > 0 {
		return avail > 0
	}
	return !r.ended && avail-r.pad >= fcgiHeaderLen
}

// readHeader consumes one record header and, for every type other than STDOUT, its content.
func (r *fcgiReader) readHeader() error {
	h, err := r.br.Peek(fcgiHeaderLen)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF // the connection ended without END_REQUEST
		}
		return err
	}
	if h[0] != fcgiVersion1 {
		return errFCGIVersion
	}
	typ, id := h[1], binary.BigEndian.Uint16(h[2:4])
	n, pad := int(binary.BigEndian.Uint16(h[4:6])), int(h[6])
	if _, err := r.br.Discard(fcgiHeaderLen); err != nil {
		return err
	}
	if id != fcgiRequestID {
		return errFCGIRequestID
	}
	switch typ {
	case fcgiStdout:
		r.left, r.pad = n, pad
		return nil
	case fcgiStderr:
		for n > 0 { // in pieces: a record may be larger than the read buffer
			b, err := r.br.Peek(min(n, r.br.Size()))
			if err != nil {
				return err
			}
			if r.stderr != nil {
				r.stderr(b)
			}
			_, _ = r.br.Discard(len(b))
			n -= len(b)
		}
	case fcgiEndRequest:
		if n < 8 {
			return fmt.Errorf("fastcgi: END_REQUEST of %d bytes", n)
		}
		b, err := r.br.Peek(8)
		if err != nil {
			return err
		}
		r.appStatus, r.protoStatus = binary.BigEndian.Uint32(b[0:4]), b[4]
		r.ended = true
	}
	// Unknown and management record types are skipped (§4.2 lets us ignore what we did not ask for).
	_, err = r.br.Discard(n + pad)
	return err
}

// cgiHeaders collects the CGI response header block at the start of STDOUT (RFC 3875 §6.2) and
// parses it: header fields up to an empty line, "Status: 404 Not Found" giving the status.
type cgiHeaders struct {
	buf   []byte
	limit int
}

// feed adds STDOUT bytes. It returns done once the empty line is in, with rest the body bytes
// that followed it in b (a sub-slice of b).
func (c *cgiHeaders) feed(b []byte) (rest []byte, done bool, err error) {
	// The terminator may straddle the previous and current slices: search from a few bytes back.
	from := max(len(c.buf)-3, 0)
	c.buf = append(c.buf, b...)
	end, sep := -1, 0
	if i := bytes.Index(c.buf[from:], []byte("\r\n\r\n")); i >= 0 {
		end, sep = from+i, 4
	}
	if i := bytes.Index(c.buf[from:], []byte("\n\n")); i >= 0 && (end < 0 || from+i < end) {
		end, sep = from+i, 2
	}
	if end < 0 {
		if len(c.buf) > c.limit {
			return nil, false, errFCGIOverflow
		}
		return nil, false, nil
	}
	if end > c.limit {
		return nil, false, errFCGIOverflow
	}
	consumedBefore := len(c.buf) - len(b)
	bodyStart := end + sep - consumedBefore // index in b where the body begins
	c.buf = c.buf[:end]
	return b[bodyStart:], true, nil
}

// cgiField is one parsed header line; both slices point into cgiHeaders.buf.
type cgiField struct{ name, value []byte }

// parse splits the collected block into fields and the status. A Location without Status
// means 302 (RFC 3875 §6.2.3, a client redirect); no Status means 200.
func (c *cgiHeaders) parse(fields []cgiField) (status int, _ []cgiField, err error) {
	block := c.buf
	hasLocation := false
	for len(block) > 0 {
		line := block
		if i := bytes.IndexByte(block, '\n'); i >= 0 {
			line, block = block[:i], block[i+1:]
		} else {
			block = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return 0, fields, fmt.Errorf("fastcgi: malformed header line %q", truncate(line, 64))
		}
		name, value := line[:colon], bytes.TrimSpace(line[colon+1:])
		if !validFieldName(name) || bytes.ContainsAny(value, "\r\n\x00") {
			return 0, fields, fmt.Errorf("fastcgi: malformed header line %q", truncate(line, 64))
		}
		switch {
		case asciiEqualFold(name, "Status"):
			code, _, _ := bytes.Cut(value, []byte(" "))
			n, err := strconv.Atoi(string(code))
			if err != nil || n < 100 || n > 999 {
				return 0, fields, fmt.Errorf("fastcgi: bad Status %q", truncate(value, 32))
			}
			status = n
			continue
		case asciiEqualFold(name, "Location"):
			hasLocation = true
		}
		fields = append(fields, cgiField{name, value})
	}
	if status == 0 {
		status = 200
		if hasLocation {
			status = 302
		}
	}
	return status, fields, nil
}

// validFieldName reports an RFC 9110 §5.6.2 token.
func validFieldName(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || bytes.IndexByte([]byte(`"(),/:;<=>?@[\]{}`), c) >= 0 {
			return false
		}
	}
	return len(b) > 0
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		if lower(b[i]) != lower(s[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
