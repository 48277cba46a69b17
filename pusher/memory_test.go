package pusher

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/frontdoorhq/frontdoor/internal/testenv"
	"github.com/frontdoorhq/frontdoor/pusher/internal/memtest"
	"github.com/frontdoorhq/frontdoor/pusher/internal/ws"
)

// TestIdleSubscribedMemory holds 10,000 idle sockets, each subscribed to one of 100 channels,
// through the whole server (handshake, app, hub, subscriptions) and reports the server's memory
// per socket. The figures are recorded in docs/benchmarks.md: heap + stack about 1.5 KB plain
// and 8.9–9.0 KB over TLS (crypto/tls's buffers), the same with and without -race. The bounds
// below leave 50 % (plain) and a third (TLS) for runtime and kernel drift, so a regression of a
// few hundred bytes per socket fails here.
//
//	go test -run TestIdleSubscribedMemory -v ./pusher/
//
// Each measurement runs in a process of its own (the test binary again, with only that subtest):
// in the package's process, the servers earlier tests leave behind (parked goroutines, pools,
// timers) moved the TLS figure by up to 3 KB per socket between runs.
func TestIdleSubscribedMemory(t *testing.T) {
	t.Run("ws", func(t *testing.T) { isolated(t, func() { idleSubscribedMemory(t, false) }) })
	t.Run("wss", func(t *testing.T) { isolated(t, func() { idleSubscribedMemory(t, true) }) })
}

// isolatedEnv marks the process isolated starts.
const isolatedEnv = "PUSHER_TEST_ISOLATED"

// isolated runs f when this process is the one isolated started for t; otherwise it runs t
// alone in a new process of the test binary and reports that run's output and result.
func isolated(t *testing.T, f func()) {
	if os.Getenv(isolatedEnv) != "" {
		f()
		return
	}
	if testing.Short() {
		t.Skip("-short: skips the isolated run")
	}
	top, sub, _ := strings.Cut(t.Name(), "/")
	cmd := exec.Command(os.Args[0], "-test.run=^"+top+"$/^"+sub+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), isolatedEnv+"=1")
	cmd.SysProcAttr = testenv.DieWithParent()
	out, err := cmd.CombinedOutput()
	t.Logf("isolated run of %s:\n%s", t.Name(), out)
	if err != nil {
		t.Fatalf("isolated run of %s: %v", t.Name(), err)
	}
}

func idleSubscribedMemory(t *testing.T, overTLS bool) {
	if testing.Short() {
		t.Skip("-short: skips opening 10,000 WebSocket connections")
	}
	if !ws.EpollDriver {
		t.Skip("the portable WebSocket driver keeps a read goroutine per socket: the bound is the epoll driver's")
	}
	n, warmN := 10000, 50
	if overTLS && raceEnabled {
		n = 2000
	}
	memtest.RaiseNoFile(t, uint64(n+warmN+500))
	var wrap func(net.Listener) net.Listener
	if overTLS {
		// As cmd/frontdoor listens on :443: TLS over ListenerForTLS.
		cert := selfSignedCert(t)
		wrap = func(ln net.Listener) net.Listener {
			return tls.NewListener(ListenerForTLS(ln), &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}})
		}
	}
	ts := startServerOn(t, oneApp(), wrap)
	tlsEnv := "PUSHER_IDLE_TLS=" + strconv.FormatBool(overTLS)
	app := ts.srv.appByID("app1")
	subscribed := func(want int64) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute)
		for app.stats.subscriptions.Load() < want {
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d sockets subscribed", app.stats.subscriptions.Load(), want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// Warm the server (fasthttp worker pool, channel maps) before the baseline.
	warm := memtest.StartChild(t, "TestSubscribedClientsHelper", "PUSHER_IDLE_ADDR="+ts.addr, "PUSHER_IDLE_N="+strconv.Itoa(warmN), tlsEnv)
	if err := warm.Ready(); err != nil {
		t.Fatal(err)
	}
	subscribed(int64(warmN))
	heap0, stack0 := memtest.HeapStack()
	rss0 := memtest.RSS(t)

	clients := memtest.StartChild(t, "TestSubscribedClientsHelper", "PUSHER_IDLE_ADDR="+ts.addr, "PUSHER_IDLE_N="+strconv.Itoa(n), tlsEnv)
	if err := clients.Ready(); err != nil {
		t.Fatal(err)
	}
	subscribed(int64(warmN + n))
	heap1, stack1 := memtest.HeapStack()
	rss1 := memtest.RSS(t)
	per := float64(heap1-heap0+stack1-stack0) / float64(n)
	t.Logf("%d idle subscribed sockets (TLS %v), server side: HeapInuse %.0f B + StackInuse %.0f B = %.0f B/socket; RSS %.0f B/socket",
		n, overTLS, float64(heap1-heap0)/float64(n), float64(stack1-stack0)/float64(n), per, float64(rss1-rss0)/float64(n))
	if path := os.Getenv("PUSHER_IDLE_HEAPPROFILE"); path != "" && overTLS {
		f, _ := os.Create(path)
		_ = pprof.WriteHeapProfile(f)
		_ = f.Close()
	}
	limit := maxIdleSubscribedBytes
	if overTLS {
		limit = maxIdleSubscribedTLSBytes
	}
	if per > float64(limit) {
		t.Fatalf("%.0f bytes of heap and stack per idle subscribed socket (TLS %v), over %d", per, overTLS, limit)
	}
}

// Bounds on heap + stack per idle subscribed socket.
const (
	maxIdleSubscribedBytes    = 2300  // measured 1,503–1,563
	maxIdleSubscribedTLSBytes = 12000 // measured 8,905–9,003
)

// TestSubscribedClientsHelper is the client process of TestIdleSubscribedMemory; it does
// nothing in a normal run. Each connection completes the handshake, subscribes, and then idles.
func TestSubscribedClientsHelper(t *testing.T) {
	addr := os.Getenv("PUSHER_IDLE_ADDR")
	if addr == "" {
		t.Skip("helper process for TestIdleSubscribedMemory")
	}
	n, _ := strconv.Atoi(os.Getenv("PUSHER_IDLE_N"))
	overTLS := os.Getenv("PUSHER_IDLE_TLS") == "true"
	memtest.RaiseNoFile(t, uint64(n)+500)
	conns := make([]net.Conn, 0, n)
	br := bufio.NewReaderSize(nil, 512)
	for i := range n {
		var c net.Conn
		var err error
		if overTLS {
			c, err = tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}) // the test's own throwaway certificate
		} else {
			c, err = net.Dial("tcp", addr)
		}
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "GET /app/key1?protocol=7 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
		br.Reset(c)
		for { // the 101 response's header block
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if line == "\r\n" {
				break
			}
		}
		sub := []byte(`{"event":"pusher:subscribe","data":{"channel":"room-` + strconv.Itoa(i%100) + `"}}`)
		frame := append([]byte{0x81, 0x80 | byte(len(sub)), 0, 0, 0, 0}, sub...) // zero mask
		if _, err := c.Write(frame); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	memtest.Hold(conns)
}

func selfSignedCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
