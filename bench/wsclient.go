package bench

import (
	"bytes"
	"context"
	cryptotls "crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
)

// portsPerSource is how many client sockets the bench opens from one source address before it
// moves to the next 127.0.0.x. The ephemeral range holds about 28,000 ports (32768–60999), but
// the kernel's search for a free one in connect() slows as the range fills: ramping 19,500
// sockets from one address fell from 10k/s to 1.5k/s past about 10,000 here, with the client at
// a full core (the same for every server); spread over 127.0.0.1–5 it held 10k/s at 40 %.
const portsPerSource = 4000

// wsClient dials Pusher WebSocket connections (protocol 7) to one endpoint.
type wsClient struct {
	e       *endpoint
	d       websocket.Dialer
	src     []net.IP
	next    atomic.Uint64
	node    atomic.Uint64 // round-robin over e.wsURLs
	timeout time.Duration
}

// newWSClient prepares dialing for up to sockets concurrent connections. Beyond one source
// address's port range, loopback targets are reached from 127.0.0.1, 127.0.0.2, ... (every
// 127/8 address is local on Linux).
func newWSClient(e *endpoint, insecure bool, sockets int) *wsClient {
	c := &wsClient{e: e, timeout: 10 * time.Second}
	c.d = websocket.Dialer{
		HandshakeTimeout: c.timeout,
		ReadBufferSize:   2048, // a few frames per read when the server coalesces its writes
		WriteBufferSize:  512,
		WriteBufferPool:  &sync.Pool{}, // no write buffer held by idle sockets
		TLSClientConfig:  &cryptotls.Config{InsecureSkipVerify: insecure, ServerName: e.hostname},
	}
	if ip := net.ParseIP(e.hostname); e.loopback && ip != nil && ip.To4() != nil && sockets > portsPerSource {
		for i := 0; i <= sockets/portsPerSource; i++ {
			c.src = append(c.src, net.IPv4(127, 0, 0, byte(1+i)))
		}
		c.d.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			ip := c.src[c.next.Add(1)%uint64(len(c.src))]
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}}
			return d.DialContext(ctx, network, addr)
		}
	}
	return c
}

// wsConn is one client socket. Reads happen on one goroutine at a time (the caller's during
// set-up, then the socket's loop); writes take wmu.
type wsConn struct {
	ws       *websocket.Conn
	socketID string
	wmu      sync.Mutex
	buf      []byte
}

// frame is a Pusher frame as the bench parses it during set-up (spec § 2). Hot-path frames
// (fan-out deliveries) are scanned, not unmarshalled.
type frame struct {
	Event   string          `json:"event"`
	Channel string          `json:"channel"`
	Data    json.RawMessage `json:"data"`
}

// data returns the frame's data as a string, undoing the double encoding of spec § 2.
func (f *frame) data() string {
	var s string
	if len(f.Data) > 0 && f.Data[0] == '"' && json.Unmarshal(f.Data, &s) == nil {
		return s
	}
	return string(f.Data)
}

// dial opens a socket and waits for pusher:connection_established (spec § 1.3).
func (c *wsClient) dial(ctx context.Context) (*wsConn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	target := c.e.wsURL
	if len(c.e.wsURLs) > 1 {
		target = c.e.wsURLs[c.node.Add(1)%uint64(len(c.e.wsURLs))]
	}
	ws, resp, err := c.d.DialContext(ctx, target, nil)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("handshake: HTTP %d", resp.StatusCode)
		}
		return nil, fmt.Errorf("dial: %w", simplifyNetErr(err))
	}
	ws.SetReadLimit(1 << 20)
	conn := &wsConn{ws: ws}
	f, err := conn.readFrame(time.Now().Add(c.timeout))
	if err != nil {
		ws.Close()
		return nil, fmt.Errorf("waiting for connection_established: %w", err)
	}
	if f.Event != "pusher:connection_established" {
		ws.Close()
		return nil, fmt.Errorf("first frame %s: %s", f.Event, f.data())
	}
	var est struct {
		SocketID string `json:"socket_id"`
	}
	if err := json.Unmarshal([]byte(f.data()), &est); err != nil || est.SocketID == "" {
		ws.Close()
		return nil, fmt.Errorf("connection_established without socket_id: %s", f.data())
	}
	conn.socketID = est.SocketID
	return conn, nil
}

// simplifyNetErr drops the addresses from common dial errors so identical failures group.
func simplifyNetErr(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return fmt.Errorf("%s: %w", op.Op, op.Err)
	}
	return err
}

// readMsg returns the next data message; the slice is valid until the next read.
func (c *wsConn) readMsg() ([]byte, error) {
	_, r, err := c.ws.NextReader()
	if err != nil {
		return nil, err
	}
	c.buf = c.buf[:0]
	for {
		if len(c.buf) == cap(c.buf) {
			c.buf = append(c.buf, 0)[:len(c.buf)]
		}
		n, err := r.Read(c.buf[len(c.buf):cap(c.buf)])
		c.buf = c.buf[:len(c.buf)+n]
		if err == io.EOF {
			return c.buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

func (c *wsConn) readFrame(deadline time.Time) (frame, error) {
	var f frame
	c.ws.SetReadDeadline(deadline)
	defer c.ws.SetReadDeadline(time.Time{})
	for {
		msg, err := c.readMsg()
		if err != nil {
			return f, err
		}
		if isPusherPing(msg) {
			c.send(pongFrame)
			continue
		}
		if err := json.Unmarshal(msg, &f); err != nil {
			return f, fmt.Errorf("bad frame %q: %v", msg, err)
		}
		return f, nil
	}
}

var (
	pingFrame = []byte(`{"event":"pusher:ping","data":{}}`)
	pongFrame = []byte(`{"event":"pusher:pong","data":{}}`)
)

func isPusherPing(msg []byte) bool { return bytes.Contains(msg, []byte(`"pusher:ping"`)) }

func (c *wsConn) send(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.ws.WriteMessage(websocket.TextMessage, b)
}

// subscribe sends pusher:subscribe and waits for subscription_succeeded on that channel,
// returning its data (the member list for presence, spec § 5.4). Frames for other channels
// that arrive meanwhile are passed to other (may be nil).
func (c *wsConn) subscribe(channel, auth, channelData string, timeout time.Duration, other func(frame)) (string, error) {
	d := map[string]string{"channel": channel}
	if auth != "" {
		d["auth"] = auth
	}
	if channelData != "" {
		d["channel_data"] = channelData
	}
	msg, _ := json.Marshal(map[string]any{"event": "pusher:subscribe", "data": d})
	if err := c.send(msg); err != nil {
		return "", fmt.Errorf("subscribe: %w", err)
	}
	deadline := time.Now().Add(timeout)
	for {
		f, err := c.readFrame(deadline)
		if err != nil {
			return "", fmt.Errorf("waiting for subscription_succeeded: %w", err)
		}
		switch {
		case f.Event == "pusher_internal:subscription_succeeded" && f.Channel == channel:
			return f.data(), nil
		case f.Event == "pusher:subscription_error" || f.Event == "pusher:error":
			return "", fmt.Errorf("%s: %s", f.Event, f.data())
		case other != nil:
			other(f)
		}
	}
}

// loop reads until the socket fails or closes, answering pusher:ping and handing every other
// message to onMsg (the slice is valid only during the call).
func (c *wsConn) loop(onMsg func([]byte)) error {
	for {
		msg, err := c.readMsg()
		if err != nil {
			return err
		}
		if isPusherPing(msg) {
			c.send(pongFrame)
			continue
		}
		onMsg(msg)
	}
}

// close sends a close frame and drops the connection without waiting.
func (c *wsConn) close() {
	c.wmu.Lock()
	c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	c.wmu.Unlock()
	c.ws.Close()
}

// closeGraceful runs the RFC 6455 closing handshake: the server answers and closes TCP first,
// so TIME_WAIT lands on the server's side and a churning client does not run out of ports.
func (c *wsConn) closeGraceful(timeout time.Duration) {
	c.wmu.Lock()
	err := c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(timeout))
	c.wmu.Unlock()
	if err == nil {
		c.ws.SetReadDeadline(time.Now().Add(timeout))
		for {
			if _, _, err := c.ws.NextReader(); err != nil {
				break
			}
		}
	}
	c.ws.Close()
}
