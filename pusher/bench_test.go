package pusher

import (
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// countingTransport stands in for a socket's connection in hub-level tests and benchmarks: it
// counts frames and bytes instead of writing them.
type countingTransport struct {
	frames, bytes atomic.Int64
	closed        atomic.Int32
	record        bool
	last          []byte // with record: the last frame (single-goroutine tests only)
}

func (c *countingTransport) Send(f []byte) error {
	c.frames.Add(1)
	c.bytes.Add(int64(len(f)))
	if c.record {
		c.last = f
	}
	return nil
}
func (c *countingTransport) Close(code int, _ string, _ ...[]byte) { c.closed.Store(int32(code)) }
func (c *countingTransport) Ping()                                 {}
func (c *countingTransport) LastActivity() int64                   { return time.Now().UnixNano() }

func newTestServer(tb testing.TB) *Server {
	tb.Helper()
	s, err := NewServer(oneApp(), zerolog.Nop())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { stopForTest(s) })
	return s
}

// attach adds n sockets on fake transports subscribed to channel.
func attach(tb testing.TB, s *Server, channel string, n int) []*countingTransport {
	app := s.appByID("app1")
	out := make([]*countingTransport, n)
	for i := range out {
		tr := &countingTransport{}
		sock := newSocket(s, app, s.newSocketID(), "")
		sock.conn = tr
		app.sockets.Store(sock, struct{}{})
		app.conns.Add(1)
		s.conns.Add(1)
		sock.handleSubscribe(json.RawMessage(`{"channel":"` + channel + `"}`))
		out[i] = tr
	}
	return out
}

// BenchmarkPublish measures one API publish fanned out to local subscribers: the frame is built
// once, so allocations per publish must not grow with the number of recipients.
func BenchmarkPublish(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			s := newTestServer(b)
			attach(b, s, "orders", n)
			app := s.appByID("app1")
			data := `{"order":{"id":1,"status":"shipped","total":"19.99"}}` + string(make([]byte, 40))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				s.publish(app, "OrderShipped", []string{"orders"}, data, "")
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}

// Allocations per publish are the same for 10 and 1,000 recipients: zero per recipient.
func TestPublishAllocsIndependentOfRecipients(t *testing.T) {
	measure := func(n int) float64 {
		s := newTestServer(t)
		attach(t, s, "orders", n)
		app := s.appByID("app1")
		return testing.AllocsPerRun(50, func() { s.publish(app, "e", []string{"orders"}, "payload", "") })
	}
	small, large := measure(10), measure(1000)
	if large != small {
		t.Fatalf("allocations per publish: %v with 10 subscribers, %v with 1000", small, large)
	}
}

// FuzzClientEvent feeds arbitrary client frames to a subscribed socket: nothing may panic, and
// whatever reaches the other subscriber is a well-formed frame.
func FuzzClientEvent(f *testing.F) {
	f.Add([]byte(`{"event":"client-typing","channel":"private-chat","data":{"typing":true}}`))
	f.Add([]byte(`{"event":"client-x","channel":"private-chat","data":"str"}`))
	f.Add([]byte(`{"event":"pusher:subscribe","data":"{\"channel\":\"x\"}"}`))
	f.Add([]byte(`{"event":"pusher:signin","data":{"auth":"key1:00","user_data":"{}"}}`))
	f.Add([]byte(`{"event":"client-\u0000","channel":"private-chat","data":[1,2,{"a":null}]}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, msg []byte) {
		s := newTestServer(t)
		app := s.appByID("app1")
		mk := func() (*Socket, *countingTransport) {
			tr := &countingTransport{record: true}
			sock := newSocket(s, app, s.newSocketID(), "")
			sock.conn = tr
			app.sockets.Store(sock, struct{}{})
			d, _ := json.Marshal(map[string]string{"channel": "private-chat", "auth": ChannelAuth("key1", "secret1", sock.id, "private-chat", "")})
			sock.handleSubscribe(d)
			return sock, tr
		}
		sender, _ := mk()
		_, rtr := mk()
		before := rtr.frames.Load()
		sender.OnMessage(msg)
		if rtr.frames.Load() > before {
			f := rtr.last
			// Strip the WebSocket header and check the JSON the other client receives.
			body := f[2:]
			switch f[1] {
			case 126:
				body = f[4:]
			case 127:
				body = f[10:]
			}
			var out map[string]any
			if err := json.Unmarshal(body, &out); err != nil {
				t.Fatalf("relayed frame is not JSON: %q", body)
			}
			if _, ok := out["data"].(string); !ok {
				t.Fatalf("relayed data is not a string: %q", body)
			}
		}
		sender.OnClose(1000, "")
	})
}
