package tls

import (
	"bufio"
	cryptotls "crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"github.com/frontdoorhq/frontdoor/internal/testenv"
)

// benchServer is the HTTPS listener as cmd/frontdoor assembles it (Manager.NewListener in front
// of a fasthttp.Server) with a self-signed ECDSA P-256 leaf, plus a plain listener with the same
// handler for comparison. Clients run in the same process, on the same cores: the figures are
// for the pair, not the server alone.
type benchServer struct {
	tlsAddr, plainAddr string
	roots              *x509.CertPool
	pid                int // server process (process benchmarks): its CPU time, children included, is reported
}

// benchCert is the one certificate every benchmark target serves, nginx included.
var benchCert = sync.OnceValue(func() *loadedCert {
	lc, err := selfSigned([]string{"bench.frontdoor.test"})
	if err != nil {
		panic(err)
	}
	return lc
})

func newBenchServer(b *testing.B, body []byte) *benchServer {
	b.Helper()
	m, err := New(Config{Mode: "self-signed", Domains: []string{"bench.frontdoor.test"}, HTTPSAddr: ":443", HTTPAddr: ":80"}, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	m.cert.Store(benchCert())
	h := func(ctx *fasthttp.RequestCtx) { ctx.SetContentType("text/plain"); ctx.SetBody(body) }
	lnTLS, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	lnPlain, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s1, s2 := &fasthttp.Server{Handler: h}, &fasthttp.Server{Handler: h}
	go s1.Serve(m.NewListener(lnTLS))
	go s2.Serve(lnPlain)
	b.Cleanup(func() { s1.Shutdown(); s2.Shutdown() })
	roots := x509.NewCertPool()
	roots.AddCert(m.cert.Load().cert.Leaf)
	return &benchServer{tlsAddr: lnTLS.Addr().String(), plainAddr: lnPlain.Addr().String(), roots: roots}
}

// BenchmarkHandshake is a new connection per iteration: TCP connect, a TLS handshake (the client
// verifies the chain) and one small request. It is what a burst of new visitors or reconnecting
// WebSocket clients costs. "full" is a first visit; "resumed" presents the session ticket from the
// client's previous connection (each client goroutine has its own session cache), as a returning
// browser or a reconnecting WebSocket does. The key exchange is X25519 alone, which is what
// Nginx with Debian's OpenSSL 3.0 negotiates, so the figures compare; "X25519MLKEM768" is Go's
// default client, which frontdoor answers with the hybrid post-quantum exchange.
func BenchmarkHandshake(b *testing.B) {
	s := newBenchServer(b, []byte("ok"))
	benchHandshakes(b, "", s, true)
}

func benchHandshakes(b *testing.B, prefix string, s *benchServer, pq bool) {
	type variant struct {
		name    string
		version uint16
		curves  []cryptotls.CurveID
		resume  bool
	}
	// P-256 is listed after X25519 (whose share alone is sent) because in TLS 1.2 OpenSSL only
	// uses an ECDSA certificate whose curve the client lists.
	x25519 := []cryptotls.CurveID{cryptotls.X25519, cryptotls.CurveP256}
	variants := []variant{
		{"TLS1.3/ECDSA-P256/X25519/full", cryptotls.VersionTLS13, x25519, false},
		{"TLS1.3/ECDSA-P256/X25519/resumed", cryptotls.VersionTLS13, x25519, true},
		{"TLS1.2/ECDSA-P256/X25519/full", cryptotls.VersionTLS12, x25519, false},
		{"TLS1.2/ECDSA-P256/X25519/resumed", cryptotls.VersionTLS12, x25519, true},
	}
	if pq {
		variants = append(variants, variant{"TLS1.3/ECDSA-P256/X25519MLKEM768/full", cryptotls.VersionTLS13, nil, false})
	}
	for _, v := range variants {
		b.Run(prefix+v.name, func(b *testing.B) {
			base := &cryptotls.Config{ServerName: "bench.frontdoor.test", RootCAs: s.roots, MinVersion: v.version, MaxVersion: v.version,
				CurvePreferences: v.curves, NextProtos: []string{"http/1.1"}}
			var resumed, total atomic.Int64
			b.SetParallelism(benchParallelism)
			start, cpu0 := time.Now(), testenv.ProcessCPU(s.pid)
			b.RunParallel(func(pb *testing.PB) {
				cfg := base.Clone()
				if v.resume {
					cfg.ClientSessionCache = cryptotls.NewLRUClientSessionCache(1)
					handshakeOnce(b, s.tlsAddr, cfg) // the first visit, which brings the ticket
				}
				for pb.Next() {
					if handshakeOnce(b, s.tlsAddr, cfg) {
						resumed.Add(1)
					}
					total.Add(1)
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "handshakes/s")
			if s.pid != 0 {
				// Server CPU per handshake holds up better than the rate when other jobs share the
				// cores (it still includes the kernel's TCP work for the server's side).
				b.ReportMetric(float64((testenv.ProcessCPU(s.pid)-cpu0).Microseconds())/float64(b.N), "server-µs/handshake")
			}
			if v.resume {
				// Anything below 100 % means the figure mixes in full handshakes.
				b.ReportMetric(100*float64(resumed.Load())/float64(max(total.Load(), 1)), "%resumed")
			}
		})
	}
}

// handshakeOnce connects, makes one request, reads the response (which also takes in a TLS 1.3
// session ticket) and says whether the handshake resumed a session.
func handshakeOnce(b *testing.B, addr string, cfg *cryptotls.Config) bool {
	c, err := cryptotls.Dial("tcp", addr, cfg)
	if err != nil {
		b.Error(err)
		return false
	}
	defer c.Close()
	buf := make([]byte, 512)
	c.Write([]byte("GET /body=2B HTTP/1.1\r\nHost: bench.frontdoor.test\r\nConnection: close\r\n\r\n"))
	n, _ := bufio.NewReader(c).Read(buf)
	if !strings.HasPrefix(string(buf[:n]), "HTTP/1.1 200") {
		b.Errorf("response %q", buf[:n])
	}
	if cfg.MaxVersion == cryptotls.VersionTLS13 && cfg.ClientSessionCache != nil {
		// The ticket follows the response headers in the stream when the server sends it after
		// the handshake; read to the close so the client has processed it.
		io.Copy(io.Discard, c)
	}
	return c.ConnectionState().DidResume
}

// BenchmarkRequests is steady-state keep-alive traffic, the same handler over TLS and plain:
// the difference is what terminating TLS here costs per request once connections exist.
func BenchmarkRequests(b *testing.B) {
	for _, size := range benchSizes {
		s := newBenchServer(b, []byte(strings.Repeat("x", size.n)))
		benchRequests(b, "", s, size.name, size.n, "/")
	}
}

// benchParallelism × GOMAXPROCS clients are in flight at once: many visitors, not a ping-pong.
const benchParallelism = 16

var benchSizes = []struct {
	name string
	n    int
}{{"body=2B", 2}, {"body=16KiB", 16 << 10}}

func benchRequests(b *testing.B, prefix string, s *benchServer, sizeName string, size int, path string) {
	for _, mode := range []string{"plain", "tls"} {
		b.Run(prefix+mode+"/"+sizeName, func(b *testing.B) {
			hc := &fasthttp.HostClient{Addr: s.plainAddr, MaxConns: 64}
			uri := "http://bench.frontdoor.test" + path
			if mode == "tls" {
				uri = "https://bench.frontdoor.test" + path
				hc.Addr, hc.IsTLS = s.tlsAddr, true
				hc.TLSConfig = &cryptotls.Config{ServerName: "bench.frontdoor.test", RootCAs: s.roots}
			}
			defer hc.CloseIdleConnections()
			b.SetParallelism(benchParallelism)
			start := time.Now()
			b.SetBytes(int64(size))
			b.RunParallel(func(pb *testing.PB) {
				req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				defer fasthttp.ReleaseRequest(req)
				defer fasthttp.ReleaseResponse(resp)
				req.SetRequestURI(uri)
				for pb.Next() {
					if err := hc.Do(req, resp); err != nil || len(resp.Body()) != size {
						b.Errorf("%v, %d bytes", err, len(resp.Body()))
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
		})
	}
}
