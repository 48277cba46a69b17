package ws

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/valyala/fasthttp"
)

// recorder is a Handler that keeps what it was told.
type recorder struct {
	adopted  *Conn // set by Adopted before the read goroutine starts
	echo     bool  // OnMessage sends each message back
	onAdopt  func(*Conn)
	mu       sync.Mutex
	msgs     []string
	closes   atomic.Int32
	code     int
	reason   string
	closedCh chan struct{}
	gotMsg   chan struct{}
}

func newRecorder() *recorder {
	return &recorder{closedCh: make(chan struct{}), gotMsg: make(chan struct{}, 1024)}
}

// Adopted implements Adopter.
func (r *recorder) Adopted(c *Conn) {
	r.adopted = c
	if r.onAdopt != nil {
		r.onAdopt(c)
	}
}

func (r *recorder) OnMessage(p []byte) {
	if r.adopted == nil {
		panic("OnMessage before Adopted")
	}
	r.mu.Lock()
	r.msgs = append(r.msgs, string(p))
	r.mu.Unlock()
	if r.echo {
		_ = r.adopted.Send(AppendFrame(nil, OpText, p))
	}
	select {
	case r.gotMsg <- struct{}{}:
	default:
	}
}

func (r *recorder) OnClose(code int, reason string) {
	if r.closes.Add(1) == 1 {
		r.mu.Lock()
		r.code, r.reason = code, reason
		r.mu.Unlock()
		close(r.closedCh)
	}
}

func (r *recorder) waitClosed(t *testing.T) (int, string) {
	t.Helper()
	select {
	case <-r.closedCh:
	case <-time.After(20 * time.Second):
		t.Fatal("OnClose not called")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.code, r.reason
}

func (r *recorder) messages() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.msgs...)
}

// server is a fasthttp server configured as cmd/frontdoor configures it, adopting every upgrade.
type server struct {
	addr    string
	f       *Flusher
	conns   chan *Conn
	recs    chan *recorder
	opts    Options
	echo    atomic.Bool                 // new conns' recorders echo what they read
	onAdopt atomic.Pointer[func(*Conn)] // new conns' recorders call it in Adopted
}

func startServer(t testing.TB, opts Options, tlsCfg *tls.Config) *server {
	t.Helper()
	return startServerWith(t, opts, tlsCfg, NewFlusher(0), nil)
}

// startServerWith is startServer with the given flusher; with first non-nil, fasthttp does not
// write the 101 response: it goes out as Options.Preface, followed by first, as pusher does it.
func startServerWith(t testing.TB, opts Options, tlsCfg *tls.Config, f *Flusher, first [][]byte) *server {
	t.Helper()
	s := &server{f: f, conns: make(chan *Conn, 20000), recs: make(chan *recorder, 20000), opts: opts}
	up := websocket.FastHTTPUpgrader{ReadBufferSize: 512, WriteBufferSize: 1024, WriteBufferPool: &sync.Pool{},
		CheckOrigin: func(*fasthttp.RequestCtx) bool { return true }}
	srv := &fasthttp.Server{
		KeepHijackedConns: true,
		ReadBufferSize:    4096,
		Handler: func(ctx *fasthttp.RequestCtx) {
			if first != nil {
				ctx.HijackSetNoResponse(true)
			}
			_ = up.Upgrade(ctx, func(wc *websocket.Conn) {
				r := newRecorder()
				r.echo = s.echo.Load()
				if f := s.onAdopt.Load(); f != nil {
					r.onAdopt = *f
				}
				opts := s.opts
				if first != nil {
					opts.Preface, opts.First = ctx.Response.Header.AppendBytes(nil), first
				}
				c := Adopt(wc.NetConn(), r, opts, s.f)
				if r.adopted != c {
					panic("Adopted not called with the conn")
				}
				s.recs <- r
				s.conns <- c
			})
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(TLSBaseListener{ln}, tlsCfg) // as cmd/frontdoor listens: TLS conns go to the epoll driver too
	}
	s.addr = ln.Addr().String()
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = ln.Close()
		s.f.Stop()
	})
	return s
}

func (s *server) next(t testing.TB) (*Conn, *recorder) {
	t.Helper()
	select {
	case c := <-s.conns:
		return c, <-s.recs
	case <-time.After(20 * time.Second):
		t.Fatal("no connection adopted")
	}
	return nil, nil
}

func dial(t testing.TB, s *server) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	wc, _, err := d.Dial("ws://"+s.addr+"/app/key", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = wc.Close() })
	return wc
}

// TestInterop runs our conn against the fasthttp/websocket client both ways: fragmented masked
// messages and pings in, our frames out, the client's close echoed.
func TestInterop(t *testing.T) {
	s := startServer(t, Options{MaxMessageSize: 1 << 20}, nil)
	wc := dial(t, s)
	c, rec := s.next(t)

	pongs := make(chan string, 4)
	wc.SetPongHandler(func(a string) error { pongs <- a; return nil })

	// A message larger than the client's write buffer goes out fragmented.
	big := strings.Repeat("é", 5000) // multi-byte runes split across fragments
	w, err := wc.NextWriter(websocket.TextMessage)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(big); i += 777 {
		if _, err := w.Write([]byte(big[i:min(i+777, len(big))])); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := wc.WriteMessage(websocket.TextMessage, []byte("small")); err != nil {
		t.Fatal(err)
	}
	if err := wc.WriteControl(websocket.PingMessage, []byte("hi"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}

	// Our frames of every length class.
	sizes := []int{0, 1, 125, 126, 65535, 65536, 200000}
	for _, n := range sizes {
		if err := c.Send(AppendFrame(nil, OpText, bytes.Repeat([]byte{'a' + byte(n%26)}, n))); err != nil {
			t.Fatal(err)
		}
	}
	// The pong arrives interleaved with data; the pong handler runs inside ReadMessage, so one
	// goroutine keeps reading.
	type readResult struct {
		typ int
		p   []byte
		err error
	}
	reads := make(chan readResult, 16)
	go func() {
		for {
			typ, p, err := wc.ReadMessage()
			reads <- readResult{typ, p, err}
			if err != nil {
				return
			}
		}
	}()
	for _, n := range sizes {
		r := <-reads
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.typ != websocket.TextMessage || len(r.p) != n || (n > 0 && r.p[0] != 'a'+byte(n%26)) {
			t.Fatalf("frame of %d bytes: type %d len %d", n, r.typ, len(r.p))
		}
	}
	select {
	case a := <-pongs:
		if a != "hi" {
			t.Fatalf("pong payload %q", a)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no pong")
	}
	got := rec.messages()
	if len(got) != 2 || got[0] != big || got[1] != "small" {
		t.Fatalf("server got %d messages", len(got))
	}
	if c.LastActivity() == 0 || c.RemoteAddr() == nil {
		t.Fatal("LastActivity/RemoteAddr not set")
	}

	// The client closes; we echo its code and report it.
	if err := wc.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4321, "bye")); err != nil {
		t.Fatal(err)
	}
	r := <-reads
	var ce *websocket.CloseError
	if !asCloseError(r.err, &ce) || ce.Code != 4321 {
		t.Fatalf("echo: %v", r.err)
	}
	if code, reason := rec.waitClosed(t); code != 4321 || reason != "bye" {
		t.Fatalf("OnClose(%d, %q)", code, reason)
	}
	if err := c.Send(AppendFrame(nil, OpText, nil)); err != ErrClosed {
		t.Fatalf("Send after close: %v", err)
	}
}

func asCloseError(err error, out **websocket.CloseError) bool {
	ce, ok := err.(*websocket.CloseError)
	*out = ce
	return ok
}

// TestServerClose checks Close ordering: queued frames, then final frames, then the close frame.
func TestServerClose(t *testing.T) {
	s := startServer(t, Options{}, nil)
	wc := dial(t, s)
	c, rec := s.next(t)
	for i := range 100 {
		_ = c.Send(AppendFrame(nil, OpText, fmt.Appendf(nil, "m%d", i)))
	}
	c.Close(4200, "restart", AppendFrame(nil, OpText, []byte("final1")), AppendFrame(nil, OpText, []byte("final2")))
	if err := c.Send(AppendFrame(nil, OpText, []byte("late"))); err != ErrClosed {
		t.Fatalf("Send after Close: %v", err)
	}
	for i := range 100 {
		_, p, err := wc.ReadMessage()
		if err != nil || string(p) != fmt.Sprintf("m%d", i) {
			t.Fatalf("message %d: %q %v", i, p, err)
		}
	}
	for _, want := range []string{"final1", "final2"} {
		_, p, err := wc.ReadMessage()
		if err != nil || string(p) != want {
			t.Fatalf("want %s: %q %v", want, p, err)
		}
	}
	_, _, err := wc.ReadMessage() // the client library echoes the close for us
	var ce *websocket.CloseError
	if !asCloseError(err, &ce) || ce.Code != 4200 || ce.Text != "restart" {
		t.Fatalf("close: %v", err)
	}
	if code, _ := rec.waitClosed(t); code != 4200 {
		t.Fatalf("OnClose code %d", code)
	}
}

// TestCloseWithoutReply: a client that never answers the close still gets its fd closed, within
// the linger bound.
func TestCloseWithoutReply(t *testing.T) {
	s := startServer(t, Options{}, nil)
	raw, br := rawDial(t, s.addr, 0)
	c, rec := s.next(t)
	c.Close(4000, "go away")
	op, p := readServerFrame(t, br)
	if op != OpClose || binary.BigEndian.Uint16(p) != 4000 {
		t.Fatalf("got op %d %q", op, p)
	}
	// The server closes its side; we see EOF without sending anything.
	_ = raw.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("want EOF, got %v", err)
	}
	if code, _ := rec.waitClosed(t); code != 4000 {
		t.Fatalf("code %d", code)
	}
}

// TestProtocolErrorCloses: a violation is answered with its close code, then the fd closes.
func TestProtocolErrorCloses(t *testing.T) {
	s := startServer(t, Options{}, nil)
	cases := []struct {
		frame []byte
		code  int
	}{
		{[]byte{0x81, 0x02, 'h', 'i'}, 1002}, // unmasked
		{clientFrame(true, OpBinary, []byte("b"), [4]byte{1, 2, 3, 4}), 1003},
		{clientFrame(true, OpText, []byte{0xff}, [4]byte{1, 2, 3, 4}), 1007},
		{clientFrame(true, OpText, make([]byte, 70000), [4]byte{1, 2, 3, 4}), 1009},
	}
	for _, tc := range cases {
		raw, br := rawDial(t, s.addr, 0)
		_, rec := s.next(t)
		if _, err := raw.Write(tc.frame); err != nil {
			t.Fatal(err)
		}
		op, p := readServerFrame(t, br)
		if op != OpClose || int(binary.BigEndian.Uint16(p)) != tc.code {
			t.Fatalf("want close %d, got op %d %q", tc.code, op, p)
		}
		// The client drops the connection (RFC 6455 §7.1.7 lets either side close the TCP
		// connection once the connection is failed); the conn reports the code it sent.
		_ = raw.Close()
		if code, _ := rec.waitClosed(t); code != tc.code {
			t.Fatalf("OnClose %d, want %d", code, tc.code)
		}
	}
}

// TestOnCloseOnce races Close from many goroutines with the client dropping the connection.
func TestOnCloseOnce(t *testing.T) {
	s := startServer(t, Options{}, nil)
	for range 20 {
		raw, _ := rawDial(t, s.addr, 0)
		c, rec := s.next(t)
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = c.Send(AppendFrame(nil, OpText, []byte("x")))
				c.Close(4000+i, "race")
			}()
		}
		_ = raw.Close()
		wg.Wait()
		rec.waitClosed(t)
		time.Sleep(10 * time.Millisecond) // a second OnClose would come from goroutines already running
		if n := rec.closes.Load(); n != 1 {
			t.Fatalf("OnClose called %d times", n)
		}
	}
}

// rawDial performs the upgrade by hand over TCP, optionally with a small receive buffer, and
// returns the conn with a reader positioned after the 101 response.
func rawDial(t testing.TB, addr string, rcvbuf int) (net.Conn, *bufio.Reader) {
	t.Helper()
	nc := dialSmallBuffer(t, addr, rcvbuf)
	upgrade(t, nc, addr)
	return nc, bufio.NewReaderSize(nc, 1024)
}

// readServerFrame reads one unmasked server frame.
func readServerFrame(t testing.TB, br *bufio.Reader) (Opcode, []byte) {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		t.Fatal(err)
	}
	if h[0]&0x80 == 0 || h[1]&0x80 != 0 {
		t.Fatalf("bad server frame header % x", h)
	}
	n := int(h[1] & 0x7f)
	switch n {
	case 126:
		var e [2]byte
		_, _ = io.ReadFull(br, e[:])
		n = int(binary.BigEndian.Uint16(e[:]))
	case 127:
		var e [8]byte
		_, _ = io.ReadFull(br, e[:])
		n = int(binary.BigEndian.Uint64(e[:]))
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(br, p); err != nil {
		t.Fatal(err)
	}
	return Opcode(h[0] & 0x0f), p
}

// TestOverflowClosesOnlySlowConn: a client that never reads fills its queue and is closed with
// 4100 after the overflow frame; a fast client on the same flusher receives every frame.
func TestOverflowClosesOnlySlowConn(t *testing.T) {
	ovf := AppendFrame(nil, OpText, []byte(`{"event":"pusher:error","data":{"code":4100}}`))
	s := startServer(t, Options{MaxQueueBytes: 256 << 10, MaxQueueFrames: 4096, OverflowFrames: [][]byte{ovf}}, nil)
	slowRaw, _ := rawDial(t, s.addr, 4096)
	slow, slowRec := s.next(t)
	fastWS := dial(t, s)
	fast, fastRec := s.next(t)

	frame := AppendFrame(nil, OpText, bytes.Repeat([]byte("z"), 1000))
	const total = 5000 // 5 MB: far over the slow conn's kernel buffers plus its 256 KB queue
	var got atomic.Int64
	readErr := make(chan error, 1)
	go func() {
		for got.Load() < total {
			_, p, err := fastWS.ReadMessage()
			if err != nil || len(p) != 1000 {
				readErr <- fmt.Errorf("after %d: %v (len %d)", got.Load(), err, len(p))
				return
			}
			got.Add(1)
		}
		readErr <- nil
	}()
	slowErr := 0
	for sent := 0; sent < total; sent += 100 {
		for range 100 {
			if err := fast.Send(frame); err != nil {
				t.Fatalf("fast Send: %v", err)
			}
			if slow.Send(frame) != nil {
				slowErr++
			}
		}
		// Pace on the fast reader so its own queue stays bounded; the slow one never reads.
		deadline := time.Now().Add(20 * time.Second)
		for got.Load() < int64(sent+100) {
			if time.Now().After(deadline) {
				t.Fatalf("fast conn stuck at %d", got.Load())
			}
			time.Sleep(time.Millisecond)
		}
	}
	if err := <-readErr; err != nil {
		t.Fatal(err)
	}
	if slowErr == 0 {
		t.Fatal("slow conn never overflowed")
	}
	_ = slowRaw // never read: the server gives up on it by itself
	if code, _ := slowRec.waitClosed(t); code != CloseOverCapacity {
		t.Fatalf("slow conn closed with %d", code)
	}
	select {
	case <-fastRec.closedCh:
		t.Fatal("fast conn closed")
	default:
	}
}

// TestPartialWritesByteExact: with small socket buffers and a client that reads in small steps,
// every frame arrives whole and in order.
func TestPartialWritesByteExact(t *testing.T) {
	s := startServer(t, Options{MaxQueueBytes: 64 << 20, MaxQueueFrames: 100000}, nil)
	raw, br := rawDial(t, s.addr, 4096)
	c, _ := s.next(t)
	var want bytes.Buffer
	var frames [][]byte
	for i := range 2000 {
		n := (i * 7919) % 3000
		p := make([]byte, n)
		for j := range p {
			p[j] = byte(i + j)
		}
		f := AppendFrame(nil, OpText, p)
		frames = append(frames, f)
		want.Write(f)
	}
	go func() {
		for i, f := range frames {
			if c.Send(f) != nil {
				return
			}
			if i%100 == 0 {
				time.Sleep(time.Millisecond) // let some flushes run between batches
			}
		}
	}()
	got := make([]byte, want.Len())
	_ = raw.SetReadDeadline(time.Now().Add(60 * time.Second))
	for off := 0; off < len(got); {
		n, err := br.Read(got[off:min(off+333, len(got))])
		if err != nil {
			t.Fatalf("after %d bytes: %v", off, err)
		}
		off += n
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatal("stream differs from the frames sent")
	}
	// The shared frames were not modified by partial writes.
	for i, f := range frames {
		if !bytes.Equal(f, AppendFrame(nil, OpText, f[len(f)-((i*7919)%3000):])) {
			t.Fatalf("frame %d modified", i)
		}
	}
}

// TestTLSFallback exercises the blocking-writer path over crypto/tls, and the epoll driver
// reading through TLS (records split across reads, several messages per record, big messages
// spanning records).
func TestTLSFallback(t *testing.T) {
	cert := selfSigned(t)
	s := startServer(t, Options{}, &tls.Config{Certificates: []tls.Certificate{cert}})
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	d := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}, HandshakeTimeout: 10 * time.Second}
	wc, _, err := d.Dial("wss://"+s.addr+"/app/key", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	c, rec := s.next(t)
	if err := wc.WriteMessage(websocket.TextMessage, []byte("over tls")); err != nil {
		t.Fatal(err)
	}
	for i := range 500 {
		if err := c.Send(AppendFrame(nil, OpText, fmt.Appendf(nil, "%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 500 {
		_, p, err := wc.ReadMessage()
		if err != nil || string(p) != fmt.Sprint(i) {
			t.Fatalf("message %d: %q %v", i, p, err)
		}
	}
	select {
	case <-rec.gotMsg:
	case <-time.After(10 * time.Second):
		t.Fatal("no message over TLS")
	}
	if m := rec.messages(); len(m) != 1 || m[0] != "over tls" {
		t.Fatalf("got %q", m)
	}
	if EpollDriver && (!c.polled() || c.base == nil) {
		t.Fatal("the TLS conn was not given to the epoll driver")
	}
	want := []string{"over tls"}
	for i := range 300 {
		m := fmt.Sprintf("%d:%s", i, bytes.Repeat([]byte{'a' + byte(i%26)}, (i*7919)%9000))
		if i == 150 {
			m = "big:" + strings.Repeat("z", 40000) // several TLS records
		}
		want = append(want, m)
		if err := wc.WriteMessage(websocket.TextMessage, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(rec.messages()) < len(want) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := rec.messages(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %d messages over TLS, want %d in order", len(got), len(want))
	}
	c.Close(1000, "done")
	_, _, err = wc.ReadMessage()
	var ce *websocket.CloseError
	if !asCloseError(err, &ce) || ce.Code != 1000 {
		t.Fatalf("close: %v", err)
	}
	rec.waitClosed(t)
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// The 101 response written by ws (Options.Preface) reaches the client before First, over plain
// TCP and TLS, and the conn then works as any other.
func TestPrefaceAndFirstFrame(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", tlsOn), func(t *testing.T) {
			var cfg *tls.Config
			if tlsOn {
				cfg = &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}
			}
			s := startServerWith(t, Options{}, cfg, NewFlusher(0), [][]byte{AppendFrame(nil, OpText, []byte("hello"))})
			d := websocket.Dialer{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
			scheme := "ws"
			if tlsOn {
				scheme = "wss"
			}
			wc, resp, err := d.Dial(scheme+"://"+s.addr+"/", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer wc.Close()
			if resp.StatusCode != 101 || resp.Header.Get("Sec-Websocket-Accept") == "" {
				t.Fatalf("handshake response %d %v", resp.StatusCode, resp.Header)
			}
			_, msg, err := wc.ReadMessage()
			if err != nil || string(msg) != "hello" {
				t.Fatalf("first message %q, %v", msg, err)
			}
			c, r := s.next(t)
			if err := wc.WriteMessage(websocket.TextMessage, []byte("ping")); err != nil {
				t.Fatal(err)
			}
			<-r.gotMsg
			if got := r.messages(); len(got) != 1 || got[0] != "ping" {
				t.Fatalf("server got %q", got)
			}
			c.Close(CloseNormal, "")
		})
	}
}

// A slow-consumer abort before anything was written drops the queued frames but not the 101
// response: without it the client could not read the 4100 close. Adopt writes its first frames
// only once the conn is set up, so a Send from Adopted (a broadcast reaching a just-registered
// socket) comes before that write.
func TestAbortKeepsPreface(t *testing.T) {
	s := startServerWith(t, Options{MaxQueueBytes: 1000, OverflowFrames: [][]byte{AppendFrame(nil, OpText, []byte("too slow"))}},
		nil, NewFlusher(0), [][]byte{AppendFrame(nil, OpText, []byte("hello"))})
	sendErr := make(chan error, 1)
	over := func(c *Conn) { sendErr <- c.Send(AppendFrame(nil, OpText, make([]byte, 2000))) }
	s.onAdopt.Store(&over)
	nc, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	fmt.Fprintf(nc, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	s.next(t)
	if err := <-sendErr; err != ErrQueueFull {
		t.Fatalf("Send over the bound: %v, want ErrQueueFull", err)
	}

	br := bufio.NewReader(nc)
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	status, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(status, "HTTP/1.1 101") {
		t.Fatalf("first line %q, %v: the 101 response was dropped", status, err)
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "\r\n" {
			break
		}
	}
	rest, _ := io.ReadAll(br)
	want := append(AppendFrame(nil, OpText, []byte("too slow")), AppendClose(nil, CloseOverCapacity, "Over capacity: the client is not reading fast enough")...)
	if !bytes.Equal(rest, want) {
		t.Fatalf("after the 101: %q\nwant %q (hello dropped, overflow frame, 4100 close)", rest, want)
	}
}

// slowClose stands for a tls.Conn whose Close waits on the network (close_notify to a client with
// a full receive window waits up to 5 s): Close blocks until the test releases it.
type slowClose struct {
	net.Conn
	entered, release chan struct{}
}

func (s *slowClose) Close() error {
	close(s.entered)
	<-s.release
	return s.Conn.Close()
}

// Closing a conn must not hold the lock Send takes: Send runs during fan-out under a channel's
// lock, so a close waiting on the network (close_notify to a dead TLS client) stalled every
// publish to the channel. While Close is blocked, Send answers at once.
func TestSendDoesNotWaitForClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	sc := &slowClose{Conn: server, entered: make(chan struct{}), release: make(chan struct{})}
	defer func() {
		select {
		case <-sc.release:
		default:
			close(sc.release)
		}
	}()
	rec := newRecorder()
	c := Adopt(sc, rec, Options{}, NewFlusher(1))
	client.Close() // the reader sees EOF and closes the conn: Close blocks
	select {
	case <-sc.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the conn was not closed after the client went away")
	}
	done := make(chan error, 1)
	go func() { done <- c.Send(AppendFrame(nil, OpText, []byte("hi"))) }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Send to a closing conn: %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Send waited for a blocked Close: the conn's lock is held across network I/O")
	}
	close(sc.release)
	rec.waitClosed(t)
}

func (c *Conn) queuedBytes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.queued
}

// dialSmallBuffer dials addr with a receive buffer of rcvbuf bytes (0: the default), so a
// client that stops reading soon leaves the server's bytes unsent.
func dialSmallBuffer(t testing.TB, addr string, rcvbuf int) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 10 * time.Second}
	if rcvbuf > 0 {
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			if err := rc.Control(func(fd uintptr) {
				serr = setRcvBuf(fd, rcvbuf)
			}); err != nil {
				return err
			}
			return serr
		}
	}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	return nc
}

// upgrade sends the WebSocket handshake over c and reads the 101 response, byte by byte so
// nothing after it is consumed.
func upgrade(t testing.TB, c net.Conn, addr string) {
	t.Helper()
	req := "GET /app/key HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var head []byte
	b := make([]byte, 1)
	for !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		if _, err := c.Read(b); err != nil {
			t.Fatalf("upgrade: %v after %q", err, head)
		}
		head = append(head, b[0])
	}
	if !bytes.Contains(head, []byte(" 101 ")) {
		t.Fatalf("upgrade answered %q", head)
	}
	_ = c.SetReadDeadline(time.Time{})
}

// A client that resets the connection right after its upgrade request makes the server's first
// write (the 101 and the first frames, queued in Adopt) fail while Adopt is still registering the
// conn: the close and the registration must not race (run with -race), and the conn must end up
// closed, not registered with nobody to read it.
func TestCloseDuringAdopt(t *testing.T) {
	s := startServerWith(t, Options{}, nil, NewFlusher(0), [][]byte{AppendFrame(nil, OpText, []byte("hello"))})
	for range 100 {
		nc, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(nc, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
		_ = nc.(*net.TCPConn).SetLinger(0)
		nc.Close() // RST: the server's first write fails
		_, rec := s.next(t)
		rec.waitClosed(t)
	}
}

// TestFramesBufferedAtAdoption: frames a client sends in the same write as its upgrade request
// sit in fasthttp's reader when Adopt runs. Adopt must hand them to the parser whether it drains
// the reader (drainBuffered) or gives it back to fasthttp's pool (ReaderFree, reclaim.go), and a
// reader given back must not replay them to the next connection that gets it from the pool.
func TestFramesBufferedAtAdoption(t *testing.T) {
	for _, tc := range []struct {
		name string
		free bool
		tls  bool
	}{{"drained", false, false}, {"reclaimed", true, false}, {"reclaimed-tls", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			var cfg *tls.Config
			if tc.tls {
				cfg = &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}
			}
			s := startServer(t, Options{ReaderFree: tc.free}, cfg)
			frame := func(p string) []byte { return append([]byte{0x81, 0x80 | byte(len(p)), 0, 0, 0, 0}, p...) } // zero mask
			for i := range 4 {
				var nc net.Conn
				var err error
				if tc.tls {
					nc, err = tls.Dial("tcp", s.addr, &tls.Config{InsecureSkipVerify: true}) // the test's own certificate
				} else {
					nc, err = net.Dial("tcp", s.addr)
				}
				if err != nil {
					t.Fatal(err)
				}
				req := []byte("GET /app/key HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
				want := []string{fmt.Sprintf("late-%d", i)}
				if i%2 == 0 { // every other connection leaves a frame in fasthttp's reader
					req = append(req, frame(fmt.Sprintf("early-%d", i))...)
					want = append([]string{fmt.Sprintf("early-%d", i)}, want...)
				}
				if _, err := nc.Write(req); err != nil {
					t.Fatal(err)
				}
				_, rec := s.next(t)
				if _, err := nc.Write(frame(want[len(want)-1])); err != nil {
					t.Fatal(err)
				}
				deadline := time.Now().Add(10 * time.Second)
				for len(rec.messages()) < len(want) && time.Now().Before(deadline) {
					select {
					case <-rec.gotMsg:
					case <-time.After(100 * time.Millisecond):
					}
				}
				if got := rec.messages(); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("connection %d: messages %q, want %q", i, got, want)
				}
				_ = nc.Close()
				rec.waitClosed(t)
			}
			if l := lastLayout.Load(); tc.free && (l == nil || !l.ok) {
				t.Fatal("fasthttp's hijacked conn not recognised (reclaim.go): its reader was drained, not given back")
			}
		})
	}
}
