package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// isWebSocketUpgrade reports an RFC 6455 §4.1 opening handshake: GET with Connection: Upgrade
// and Upgrade: websocket.
func isWebSocketUpgrade(ctx *fasthttp.RequestCtx) bool {
	return ctx.IsGet() && ctx.Request.Header.ConnectionUpgrade() &&
		bytes.EqualFold(ctx.Request.Header.Peek("Upgrade"), []byte("websocket"))
}

// tunnel passes a WebSocket handshake on a non-Pusher path to the HTTP upstream (Laravel
// Reverb behind Octane, a Node sidecar…) and, when it answers 101, joins the two connections
// byte for byte until either side closes (RFC 9110 §7.8: after 101 the connection speaks the
// new protocol). Any other answer goes back as an ordinary response.
func (u *httpUpstream) tunnel(ctx *fasthttp.RequestCtx, x *exchange) error {
	up, err := net.DialTimeout("tcp", u.addr, u.cfg.ConnectTimeout)
	if err != nil {
		if isTimeout(err) {
			return failed(kindTimeout, err)
		}
		u.down.mark()
		return failed(kindConnect, err)
	}
	ok := false
	defer func() {
		if !ok {
			up.Close()
		}
	}()

	// The handshake as the client sent it, hop-by-hop headers replaced by the upgrade pair and
	// the X-Forwarded-* set, Host preserved.
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	ctx.Request.Header.CopyTo(&req.Header)
	stripRequestHeaders(&req.Header)
	setForwarded(ctx, x.client, &req.Header)
	var b bytes.Buffer
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\n", ctx.Request.Header.RequestURI())
	for k, v := range req.Header.All() {
		if bytes.EqualFold(k, []byte("Connection")) || bytes.EqualFold(k, []byte("Content-Length")) {
			continue
		}
		b.Write(k)
		b.WriteString(": ")
		b.Write(v)
		b.WriteString("\r\n")
	}
	b.WriteString("Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	if err := up.SetDeadline(time.Now().Add(u.cfg.WriteTimeout)); err != nil {
		return failed(kindProtocol, err)
	}
	if _, err := up.Write(b.Bytes()); err != nil {
		return err
	}
	if err := up.SetDeadline(time.Now().Add(u.cfg.ReadTimeout)); err != nil {
		return failed(kindProtocol, err)
	}
	br := bufio.NewReaderSize(up, 4096)
	head, status, err := readResponseHead(br)
	if err != nil {
		return err
	}
	id := string(ctx.Response.Header.Peek("X-Request-Id"))
	if status != fasthttp.StatusSwitchingProtocols {
		// Refused (403, 426…): an ordinary response, body and all.
		var resp fasthttp.Response
		if err := resp.ReadLimitBody(bufio.NewReader(io.MultiReader(bytes.NewReader(head), br)), 1<<20); err != nil {
			return err
		}
		stripHopByHop(&resp.Header)
		resp.CopyTo(&ctx.Response)
		ctx.Response.Header.Set("X-Request-Id", id)
		ctx.SetConnectionClose()
		return nil
	}
	if err := up.SetDeadline(time.Time{}); err != nil {
		return failed(kindProtocol, err)
	}
	ok = true
	ctx.SetStatusCode(fasthttp.StatusSwitchingProtocols) // for the access log; the 101 sent is the upstream's
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {
		defer up.Close()
		defer c.Close()                          // the server keeps hijacked connections: closing is ours
		if _, err := c.Write(head); err != nil { // the 101 as the upstream sent it
			return
		}
		var once sync.Once
		closeBoth := func() { once.Do(func() { c.Close(); up.Close() }) }
		done := make(chan struct{})
		go func() { // client → upstream
			defer close(done)
			_, _ = io.Copy(up, c)
			closeBoth()
		}()
		// upstream → client, starting with what was read past the 101
		_, err := io.Copy(c, br)
		if err != nil && !errors.Is(err, net.ErrClosed) {
			u.log.Debug().Err(err).Str("upstream", u.name).Str("request_id", id).Msg("websocket tunnel ended")
		}
		closeBoth()
		<-done
	})
	return nil
}

// readResponseHead reads a response's status line and header block as sent, up to 64 KiB.
func readResponseHead(br *bufio.Reader) (head []byte, status int, err error) {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				err = errors.New("upstream handshake response line too long")
			}
			return nil, 0, err
		}
		head = append(head, line...)
		if len(head) > 64<<10 {
			return nil, 0, errors.New("upstream handshake response too large")
		}
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			break
		}
	}
	// "HTTP/1.1 101 Switching Protocols"
	f := bytes.Fields(head)
	if len(f) < 2 || !bytes.HasPrefix(f[0], []byte("HTTP/1.")) {
		return nil, 0, fmt.Errorf("upstream handshake: bad status line %q", truncate(head, 40))
	}
	if _, err := fmt.Sscan(string(f[1]), &status); err != nil || status < 100 || status > 999 {
		return nil, 0, fmt.Errorf("upstream handshake: bad status line %q", truncate(head, 40))
	}
	return head, status, nil
}
