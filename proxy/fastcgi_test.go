package proxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// encodeStdout wraps stdout as a php-fpm response: STDOUT records of at most split bytes, each
// padded to 8 as php-fpm pads them, a STDERR record in the middle, the empty STDOUT record
// and END_REQUEST.
func encodeStdout(stdout []byte, split int) []byte {
	var b []byte
	split = max(split%fcgiMaxContent, 1)
	first := true
	for len(stdout) > 0 {
		n := min(len(stdout), split)
		pad := (8 - n%8) % 8
		b = append(b, fcgiVersion1, fcgiStdout, 0, fcgiRequestID, byte(n>>8), byte(n), byte(pad), 0)
		b = append(b, stdout[:n]...)
		b = append(b, make([]byte, pad)...)
		stdout = stdout[n:]
		if first {
			b = appendRecordHeader(b, fcgiStderr, 5)
			b = append(b, "oops\n"...)
			first = false
		}
	}
	b = appendRecordHeader(b, fcgiStdout, 0)
	b = appendRecordHeader(b, fcgiEndRequest, 8)
	return append(b, 0, 0, 0, 0, fcgiRequestComplete, 0, 0, 0)
}

// readResponse parses a record stream the way the client does: headers first, then the body.
func readResponse(raw []byte, bufSize int) (status int, fields []cgiField, body []byte, stderr string, err error) {
	var r fcgiReader
	var se strings.Builder
	r.reset(bufio.NewReaderSize(bytes.NewReader(raw), bufSize), func(b []byte) { se.Write(b) })
	hdr := cgiHeaders{limit: fcgiMaxHeader}
	for {
		chunk, err := r.next(fcgiChunk)
		if err != nil {
			return 0, nil, nil, se.String(), err
		}
		rest, done, err := hdr.feed(chunk)
		if err != nil {
			return 0, nil, nil, se.String(), err
		}
		if done {
			body = append(body, rest...)
			break
		}
	}
	status, fields, err = hdr.parse(nil)
	if err != nil {
		return 0, nil, nil, se.String(), err
	}
	for {
		chunk, err := r.next(fcgiChunk)
		if errors.Is(err, io.EOF) {
			return status, fields, body, se.String(), nil
		}
		if err != nil {
			return 0, nil, nil, se.String(), err
		}
		body = append(body, chunk...)
	}
}

func TestReadResponse(t *testing.T) {
	for _, c := range []struct {
		name, stdout string
		status       int
		body         string
		fields       int
	}{
		{"plain", "Content-type: text/html\r\n\r\nhello", 200, "hello", 1},
		{"status", "Status: 422 Unprocessable Content\r\nContent-Type: application/json\r\n\r\n{}", 422, "{}", 1},
		{"bare LF", "Status: 404\nX-A: b\n\nnot found", 404, "not found", 1},
		{"location", "Location: /home\r\n\r\n", 302, "", 1},
		{"location with status", "Status: 301\r\nLocation: /home\r\n\r\n", 301, "", 1},
		{"two cookies", "Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\nx", 200, "x", 2},
		{"body with blank lines", "A: b\r\n\r\n\r\n\r\nx\n\ny", 200, "\r\n\r\nx\n\ny", 1},
		{"long header line", "X-Big: " + strings.Repeat("b", 70000) + "\r\n\r\nok", 200, "ok", 1},
	} {
		for _, split := range []int{1, 3, 7, 8, 100, 65535} {
			status, fields, body, stderr, err := readResponse(encodeStdout([]byte(c.stdout), split), 4096)
			if err != nil || status != c.status || string(body) != c.body || len(fields) != c.fields || stderr != "oops\n" {
				t.Errorf("%s split %d: %d %q %d fields, stderr %q, %v", c.name, split, status, body, len(fields), stderr, err)
			}
		}
	}
}

func TestReadResponseRefuses(t *testing.T) {
	for name, stdout := range map[string]string{
		"no colon":      "garbage\r\n\r\n",
		"bad status":    "Status: abc\r\n\r\n",
		"status 99":     "Status: 99\r\n\r\n",
		"space in name": "Bad Name: x\r\n\r\n",
		"too big":       "X: " + strings.Repeat("a", fcgiMaxHeader+10),
		"no end":        "X: y\r\n",
	} {
		if _, _, _, _, err := readResponse(encodeStdout([]byte(stdout), 1000), 4096); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	raw := encodeStdout([]byte("A: b\r\n\r\nx"), 100)
	raw[0] = 2
	if _, _, _, _, err := readResponse(raw, 4096); !errors.Is(err, errFCGIVersion) {
		t.Errorf("version 2: %v", err)
	}
	raw = encodeStdout([]byte("A: b\r\n\r\nx"), 100)
	raw[3] = 2
	if _, _, _, _, err := readResponse(raw, 4096); !errors.Is(err, errFCGIRequestID) {
		t.Errorf("request id 2: %v", err)
	}
	raw = encodeStdout([]byte("A: b\r\n\r\nxyz"), 100)
	if _, _, _, _, err := readResponse(raw[:len(raw)-20], 4096); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("cut short: %v", err)
	}
}

func TestAppendPair(t *testing.T) {
	long := strings.Repeat("v", 300)
	b := appendPair(nil, "SHORT", "x")
	if !bytes.Equal(b, []byte("\x05\x01SHORTx")) {
		t.Errorf("short: %q", b)
	}
	b = appendPair(nil, "N", long)
	if !bytes.Equal(b[:6], []byte{1, 0x80, 0, 1, 44, 'N'}) || len(b) != 6+300 {
		t.Errorf("long value: % x", b[:6])
	}
	// Params larger than one record are split at 65535 bytes.
	rec := appendStream(nil, fcgiParams, make([]byte, 70000))
	if len(rec) != 70000+2*fcgiHeaderLen || rec[4] != 0xff || rec[5] != 0xff {
		t.Errorf("split: %d bytes, first len % x", len(rec), rec[4:6])
	}
}

// FuzzFCGIResponse feeds arbitrary bytes to the record reader and header parser: they must
// never panic or loop, and what they accept must be well-formed.
func FuzzFCGIResponse(f *testing.F) {
	f.Add(encodeStdout([]byte("Status: 201\r\nContent-Type: text/plain\r\n\r\nhi"), 3))
	f.Add(encodeStdout([]byte("Location: /x\n\n"), 100))
	f.Add(encodeStdout([]byte("Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n"), 1))
	f.Add(encodeStdout([]byte("X: "+strings.Repeat("y", 5000)+"\r\n\r\nbody"), 4000))
	f.Add([]byte{1, 6, 0, 1, 0, 4, 4, 0, 'A', ':', 'b', '\n'})
	f.Add([]byte{1, 3, 0, 1, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, raw []byte) {
		status, fields, _, _, err := readResponse(raw, 16)
		if err != nil {
			return
		}
		if status < 100 || status > 999 {
			t.Fatalf("status %d", status)
		}
		for _, fl := range fields {
			if !validFieldName(fl.name) || bytes.ContainsAny(fl.value, "\r\n\x00") {
				t.Fatalf("field %q: %q", fl.name, fl.value)
			}
		}
	})
}

// FuzzCGIStdout encodes arbitrary stdout into records split anywhere: the body the parser
// returns must be exactly what followed the header block.
func FuzzCGIStdout(f *testing.F) {
	f.Add([]byte("Content-Type: text/html\r\n\r\n<p>hi</p>"), uint16(5))
	f.Add([]byte("Status: 500\n\n\n\n"), uint16(1))
	f.Add([]byte("A: b\r\n\r\n"), uint16(65535))
	f.Fuzz(func(t *testing.T, stdout []byte, split uint16) {
		_, _, body, _, err := readResponse(encodeStdout(stdout, int(split)), 4096)
		if err != nil {
			return
		}
		i, j := bytes.Index(stdout, []byte("\r\n\r\n")), bytes.Index(stdout, []byte("\n\n"))
		var want []byte
		switch {
		case i >= 0 && (j < 0 || i < j):
			want = stdout[i+4:]
		case j >= 0:
			want = stdout[j+2:]
		default:
			t.Fatal("accepted stdout without a header terminator")
		}
		if !bytes.Equal(body, want) {
			t.Fatalf("body %q, want %q", body, want)
		}
	})
}

// decodePairs reads a PARAMS name-value stream back (§3.4).
func decodePairs(t *testing.T, b []byte) map[string]string {
	t.Helper()
	readLen := func() int {
		if b[0]&0x80 == 0 {
			n := int(b[0])
			b = b[1:]
			return n
		}
		n := int(binary.BigEndian.Uint32(b[:4]) &^ (1 << 31))
		b = b[4:]
		return n
	}
	m := map[string]string{}
	for len(b) > 0 {
		nl, vl := readLen(), readLen()
		name, value := string(b[:nl]), string(b[nl:nl+vl])
		if _, dup := m[name]; dup {
			t.Errorf("%s sent twice", name)
		}
		m[name] = value
		b = b[nl+vl:]
	}
	return m
}

// TestParamsUnderTLS: HTTPS=on and REQUEST_SCHEME=https when TLS ended here (Laravel's
// $request->secure() reads HTTPS); repeated headers joined, hop-by-hop and httpoxy dropped.
func TestParamsUnderTLS(t *testing.T) {
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	var ctx fasthttp.RequestCtx
	ctx.Init2(tls.Server(c1, &tls.Config{}), nil, false)
	ctx.Request.SetRequestURI("/index.php/a%20b?x=1")
	ctx.Request.Header.SetMethod("POST")
	ctx.Request.Header.SetHost("app.test:8443")
	ctx.Request.Header.SetContentType("application/json")
	ctx.Request.Header.Add("X-Multi", "1")
	ctx.Request.Header.Add("X-Multi", "2")
	ctx.Request.Header.Set("Proxy", "http://evil")
	ctx.Request.Header.Set("Te", "trailers")
	ctx.Request.Header.Set("Connection", "close, X-Secret-Hop")
	ctx.Request.Header.Set("X-Secret-Hop", "1")
	p := decodePairs(t, appendParams(nil, &ctx, (&Handler{}).ResolveClient(&ctx), "/srv/app/public", "/srv/app/public", "index.php", "app.test", 12))
	for k, v := range map[string]string{
		"HTTPS": "on", "REQUEST_SCHEME": "https", "SERVER_NAME": "app.test", "HTTP_HOST": "app.test:8443",
		"CONTENT_LENGTH": "12", "CONTENT_TYPE": "application/json", "HTTP_X_MULTI": "1, 2",
		"PATH_INFO": "/a b", "PATH_TRANSLATED": "/srv/app/public/a b", "SCRIPT_NAME": "/index.php",
		"SCRIPT_FILENAME": "/srv/app/public/index.php", "REQUEST_URI": "/index.php/a%20b?x=1", "QUERY_STRING": "x=1",
		"DOCUMENT_URI": "/index.php/a b",
	} {
		if p[k] != v {
			t.Errorf("%s = %q, want %q", k, p[k], v)
		}
	}
	for _, k := range []string{"HTTP_PROXY", "HTTP_TE", "HTTP_CONNECTION", "HTTP_X_SECRET_HOP"} {
		if _, ok := p[k]; ok {
			t.Errorf("%s passed", k)
		}
	}
}
