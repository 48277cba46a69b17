package tls

import (
	"bufio"
	cryptotls "crypto/tls"
	"crypto/x509"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
)

// benchServer is the HTTPS listener as cmd/frontdoor assembles it (Manager.NewListener in front
// of a fasthttp.Server) with a self-signed ECDSA P-256 leaf, plus a plain listener with the same
// handler for comparison. Clients run in the same process, on the same cores: the figures are
// for the pair, not the server alone.
type benchServer struct {
	tlsAddr, plainAddr string
	roots              *x509.CertPool
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

// BenchmarkHandshake is a new connection per iteration: TCP connect, a full TLS handshake (no
// session resumption, the client verifies the chain) and one small request. It is what a burst
// of new visitors or reconnecting WebSocket clients costs.
func BenchmarkHandshake(b *testing.B) {
	s := newBenchServer(b, []byte("ok"))
	benchHandshakes(b, "", s)
}

func benchHandshakes(b *testing.B, prefix string, s *benchServer) {
	for _, v := range []struct {
		name    string
		version uint16
	}{{"TLS1.3", cryptotls.VersionTLS13}, {"TLS1.2", cryptotls.VersionTLS12}} {
		b.Run(prefix+v.name+"/ECDSA-P256", func(b *testing.B) {
			cfg := &cryptotls.Config{ServerName: "bench.frontdoor.test", RootCAs: s.roots, MinVersion: v.version, MaxVersion: v.version,
				ClientSessionCache: nil, NextProtos: []string{"http/1.1"}}
			b.SetParallelism(benchParallelism)
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				buf := make([]byte, 512)
				for pb.Next() {
					c, err := cryptotls.Dial("tcp", s.tlsAddr, cfg)
					if err != nil {
						b.Error(err)
						return
					}
					c.Write([]byte("GET /body=2B HTTP/1.1\r\nHost: bench.frontdoor.test\r\nConnection: close\r\n\r\n"))
					n, _ := bufio.NewReader(c).Read(buf)
					if !strings.HasPrefix(string(buf[:n]), "HTTP/1.1 200") {
						b.Errorf("response %q", buf[:n])
					}
					c.Close()
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "handshakes/s")
		})
	}
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
