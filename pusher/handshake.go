package pusher

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"

	"github.com/valyala/fasthttp"
)

// The WebSocket opening handshake, server side (RFC 6455 §4.2), done here rather than with
// fasthttp/websocket's upgrader: ws reads and writes the socket itself, so the library's Conn,
// its reader and write buffer were allocated on every upgrade only to be dropped, and its token
// checks fold case rune by rune. Under connection churn that was a visible share of a cycle
// (docs/benchmarks.md, "Churn by instruction count"). Refusals keep the library's statuses.

// websocketGUID is appended to the client's key before hashing (RFC 6455 §1.3).
const websocketGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// IsWebSocketUpgrade reports whether the request asks for a WebSocket: the "upgrade" token in
// Connection and "websocket" in Upgrade, both lists of case-insensitive tokens (RFC 6455 §4.2.1).
// The router uses it to tell a handshake from a Laravel route under /app.
func IsWebSocketUpgrade(ctx *fasthttp.RequestCtx) bool {
	return hasToken(ctx.Request.Header.Peek("Connection"), "upgrade") &&
		hasToken(ctx.Request.Header.Peek("Upgrade"), "websocket")
}

// hasToken reports whether the comma-separated header value v holds tok (lower case), ignoring
// ASCII case and the spaces and tabs around each element.
func hasToken(v []byte, tok string) bool {
	for len(v) > 0 {
		elem := v
		if i := bytes.IndexByte(v, ','); i >= 0 {
			elem, v = v[:i], v[i+1:]
		} else {
			v = nil
		}
		for len(elem) > 0 && (elem[0] == ' ' || elem[0] == '\t') {
			elem = elem[1:]
		}
		for len(elem) > 0 && (elem[len(elem)-1] == ' ' || elem[len(elem)-1] == '\t') {
			elem = elem[:len(elem)-1]
		}
		if len(elem) != len(tok) {
			continue
		}
		match := true
		for i := range len(elem) {
			c := elem[i]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != tok[i] {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}

// upgrade checks the handshake, sets the 101 response's headers and has fasthttp hijack the
// connection for h. It returns false when it refused: the client then has an HTTP error, with
// the status fasthttp/websocket gave (405 for a method other than GET, 400 for a missing key or
// version 13) and, which the library meant to send but lost to ctx.Error's reset,
// Sec-WebSocket-Version: 13 (RFC 6455 §4.4). The caller has checked IsWebSocketUpgrade.
func upgrade(ctx *fasthttp.RequestCtx, h fasthttp.HijackHandler) bool {
	status := 0
	key := ctx.Request.Header.Peek("Sec-WebSocket-Key")
	switch {
	case !ctx.IsGet():
		status = fasthttp.StatusMethodNotAllowed
	case !hasToken(ctx.Request.Header.Peek("Sec-WebSocket-Version"), "13"), len(key) == 0:
		status = fasthttp.StatusBadRequest
	}
	if status != 0 {
		ctx.Error(fasthttp.StatusMessage(status), status) // resets the headers: set the version after
		ctx.Response.Header.Set("Sec-WebSocket-Version", "13")
		return false
	}
	var accept [28]byte
	acceptKey(accept[:], key)
	ctx.SetStatusCode(fasthttp.StatusSwitchingProtocols)
	ctx.Response.Header.Set("Upgrade", "websocket")
	ctx.Response.Header.Set("Connection", "Upgrade")
	ctx.Response.Header.SetBytesV("Sec-WebSocket-Accept", accept[:])
	ctx.Hijack(h)
	return true
}

// acceptKey writes Sec-WebSocket-Accept for the client's key into dst (28 bytes): base64 of the
// SHA-1 of the key followed by the GUID (RFC 6455 §4.2.2).
func acceptKey(dst, key []byte) {
	var sum [sha1.Size]byte
	var buf [96]byte // a real key is 24 bytes; a longer one takes the allocating path
	if len(key)+len(websocketGUID) <= len(buf) {
		sum = sha1.Sum(append(append(buf[:0], key...), websocketGUID...))
	} else {
		d := sha1.New()
		d.Write(key)
		d.Write([]byte(websocketGUID))
		d.Sum(sum[:0])
	}
	base64.StdEncoding.Encode(dst, sum[:])
}
