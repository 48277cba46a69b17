// Package pebbletest runs Pebble, Let's Encrypt's ACME test server, on loopback for tests that
// obtain real certificates: real http-01 and tls-alpn-01 validation against the code under test,
// a fresh CA per server, and pebble-challtestsrv as Pebble's DNS server so that every name
// resolves to 127.0.0.1 and nothing leaves the machine.
//
// The binaries come from the module's tool directives (`go tool -n pebble`), built once per test
// binary. When they cannot be built the test is skipped, or fails when FRONTDOOR_REQUIRE_INTEGRATION=1.
package pebbletest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	cryptotls "crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/frontdoorhq/frontdoor/internal/testenv"
)

// Options shape one Pebble instance.
type Options struct {
	// HTTPPort and TLSPort are the ports on 127.0.0.1 where Pebble's validation authority connects
	// for http-01 and tls-alpn-01 (RFC 8555 §8.3, RFC 8737 §3). Point one at a closed port to
	// prove the other challenge type alone.
	HTTPPort, TLSPort int
	// Validity, when non-zero, is the lifetime of issued certificates (Pebble's profile
	// validityPeriod, whole seconds): short enough, it makes a client renew during a test.
	Validity time.Duration
	// OCSPResponderURL is written into issued leaves (Pebble itself runs no OCSP responder). When
	// set, the CA's keys are RSA, the only kind Pebble's management API hands out, and
	// Server.IntermediateKey is filled so that the test can answer OCSP requests itself.
	OCSPResponderURL string
}

// Server is a running Pebble with its DNS server; both stop when the test ends.
type Server struct {
	// DirectoryURL is the ACME directory (RFC 8555 §7.1.1).
	DirectoryURL string
	// ListenerCAFile is a PEM file holding the self-signed certificate of Pebble's own HTTPS
	// listeners: what an ACME client must trust to talk to it (frontdoor's --acme-ca-root).
	ListenerCAFile string
	// Root is the CA that issued certificates chain to; Pebble makes a new one at every start.
	Root *x509.Certificate
	// Intermediate signs issued leaves; IntermediateKey is its key when Options.OCSPResponderURL
	// is set (what an OCSP responder signs with), else nil.
	Intermediate    *x509.Certificate
	IntermediateKey crypto.Signer

	mgmt    string // Pebble's management listener, host:port
	ctsMgmt string // challtestsrv's management listener, host:port
	client  *http.Client
	log     *lockedBuffer
}

// Roots is a pool holding only Root, for verifying issued chains.
func (s *Server) Roots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(s.Root)
	return p
}

// Orders counts the orders Pebble has created (RFC 8555 §7.4 newOrder), read from its log: a
// refused host name must not move it.
func (s *Server) Orders() int {
	return strings.Count(s.log.String(), "Added order ")
}

// Log is everything Pebble and challtestsrv printed so far, for failure messages.
func (s *Server) Log() string { return s.log.String() }

// DNSQueries counts the DNS questions Pebble asked about host (validation and CAA lookups).
func (s *Server) DNSQueries(t testing.TB, host string) int {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"host": host})
	resp, err := http.Post("http://"+s.ctsMgmt+"/dns-request-history", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("challtestsrv history: %v", err)
	}
	defer resp.Body.Close()
	var events []json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&events); err != nil {
		t.Fatalf("challtestsrv history: %v", err)
	}
	return len(events)
}

const (
	startAttempts = 3                // fresh ports per attempt, in case another process took one
	readyTimeout  = 30 * time.Second // generous: a loaded 2-core box
)

var (
	binOnce           sync.Once
	pebbleBin, ctsBin string
	binErr            error
)

// Binaries returns the paths of pebble and pebble-challtestsrv, building them once per process
// through the go.mod tool directives. A machine without them skips the test, unless
// FRONTDOOR_REQUIRE_INTEGRATION=1 makes that a failure.
func Binaries(t testing.TB) (pebble, challtestsrv string) {
	t.Helper()
	binOnce.Do(func() {
		var paths [2]string
		for i, tool := range []string{"pebble", "pebble-challtestsrv"} {
			out, err := exec.Command("go", "tool", "-n", tool).Output()
			if err != nil {
				var stderr []byte
				if ee, ok := err.(*exec.ExitError); ok {
					stderr = ee.Stderr
				}
				binErr = fmt.Errorf("go tool -n %s: %v %s", tool, err, stderr)
				return
			}
			paths[i] = strings.TrimSpace(string(out))
		}
		pebbleBin, ctsBin = paths[0], paths[1]
	})
	if binErr != nil {
		testenv.Missing(t, "pebble", binErr.Error(), "Pebble is a tool directive in go.mod: it needs the Go toolchain and the module proxy")
	}
	return pebbleBin, ctsBin
}

// Start runs challtestsrv and Pebble on free loopback ports, waits until Pebble answers its
// directory, and fetches the issuing CA. Both processes die with the test (t.Cleanup) or with the
// test binary (Pdeathsig).
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	pebble, cts := Binaries(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "listener-cert.pem"), filepath.Join(dir, "listener-key.pem")
	listenerCert := writeListenerCert(t, certFile, keyFile)
	pool := x509.NewCertPool()
	pool.AddCert(listenerCert)
	tr := &http.Transport{TLSClientConfig: &cryptotls.Config{RootCAs: pool}, DisableKeepAlives: true}
	s := &Server{ListenerCAFile: certFile, client: &http.Client{Transport: tr, Timeout: 10 * time.Second}, log: &lockedBuffer{}}
	t.Cleanup(tr.CloseIdleConnections)

	// Picking a free port and handing it to a child can race with another process taking it;
	// a child that fails to bind exits, and a new set of ports is tried.
	var lastErr error
	for attempt := 0; attempt < startAttempts; attempt++ {
		if lastErr = s.start(t, dir, pebble, cts, o, certFile, keyFile); lastErr == nil {
			break
		}
		t.Logf("pebbletest: attempt %d: %v", attempt+1, lastErr)
	}
	if lastErr != nil {
		t.Fatalf("pebble did not start: %v\n%s", lastErr, s.log.String())
	}
	s.Root = s.fetchCert(t, "/roots/0")
	s.Intermediate = s.fetchCert(t, "/intermediates/0")
	if o.OCSPResponderURL != "" {
		s.IntermediateKey = s.fetchKey(t, "/intermediate-keys/0")
	}
	return s
}

func (s *Server) start(t testing.TB, dir, pebble, cts string, o Options, certFile, keyFile string) error {
	dns, ctsMgmt, acme, mgmt := freeUDPPort(t), freePort(t), freePort(t), freePort(t)
	s.ctsMgmt = "127.0.0.1:" + strconv.Itoa(ctsMgmt)
	ctsArgs := []string{
		"-dnsserver", "127.0.0.1:" + strconv.Itoa(dns),
		"-management", s.ctsMgmt,
		// Every A question is answered with 127.0.0.1 and AAAA with nothing: with ::1 Pebble would
		// validate over IPv6, where the code under test does not listen.
		"-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
		// DNS only: its own challenge responders stay off.
		"-http01", "", "-https01", "", "-doh", "", "-tlsalpn01", "",
	}
	ctsProc, ctsDone := s.spawn(t, "challtestsrv", cts, ctsArgs, nil)

	type profile struct {
		Description    string `json:"description"`
		ValidityPeriod uint64 `json:"validityPeriod"`
	}
	cfg := map[string]any{
		"listenAddress":                  "127.0.0.1:" + strconv.Itoa(acme),
		"managementListenAddress":        "127.0.0.1:" + strconv.Itoa(mgmt),
		"certificate":                    certFile,
		"privateKey":                     keyFile,
		"httpPort":                       o.HTTPPort,
		"tlsPort":                        o.TLSPort,
		"ocspResponderURL":               o.OCSPResponderURL,
		"externalAccountBindingRequired": false,
		"keyAlgorithm":                   "ecdsa",
	}
	if o.OCSPResponderURL != "" {
		cfg["keyAlgorithm"] = "rsa"
	}
	if o.Validity > 0 {
		// Only one profile: with several, Pebble picks one at random for orders naming none.
		cfg["profiles"] = map[string]profile{"default": {"short-lived for a renewal test", uint64(o.Validity / time.Second)}}
	}
	raw, _ := json.Marshal(map[string]any{"pebble": cfg})
	cfgFile := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(cfgFile, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{
		"PEBBLE_VA_NOSLEEP=1",      // no random 0–5 s wait before each validation
		"PEBBLE_WFE_NONCEREJECT=0", // no deliberate badNonce errors
		"PEBBLE_AUTHZREUSE=0",      // every order is validated for real
	}
	pebProc, pebDone := s.spawn(t, "pebble", pebble, []string{"-config", cfgFile, "-dnsserver", "127.0.0.1:" + strconv.Itoa(dns)}, env)

	s.DirectoryURL = "https://127.0.0.1:" + strconv.Itoa(acme) + "/dir"
	s.mgmt = "127.0.0.1:" + strconv.Itoa(mgmt)
	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-ctsDone:
			pebProc.Process.Kill()
			return fmt.Errorf("challtestsrv exited: %v", ctsProc.ProcessState)
		case <-pebDone:
			ctsProc.Process.Kill()
			return fmt.Errorf("pebble exited: %v", pebProc.ProcessState)
		default:
		}
		if s.ready() {
			return nil
		}
		if time.Now().After(deadline) {
			pebProc.Process.Kill()
			ctsProc.Process.Kill()
			return fmt.Errorf("not ready after %s", readyTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ready is true once Pebble serves its directory, its management API answers, and challtestsrv
// answers DNS history queries (its DNS listener starts in the same instant).
func (s *Server) ready() bool {
	for _, u := range []string{s.DirectoryURL, "https://" + s.mgmt + "/roots/0"} {
		resp, err := s.client.Get(u)
		if err != nil {
			return false
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false
		}
	}
	resp, err := http.Post("http://"+s.ctsMgmt+"/dns-request-history", "application/json", strings.NewReader(`{"host":"ready.test"}`))
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// spawn starts a child that is killed with the test binary (Pdeathsig) and at cleanup; its output
// goes to the shared log. The returned channel closes when it exits.
func (s *Server) spawn(t testing.TB, name, bin string, args, env []string) (*exec.Cmd, <-chan struct{}) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	w := &prefixWriter{prefix: name + ": ", buf: s.log}
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = testenv.DieWithParent()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	return cmd, done
}

func (s *Server) get(t testing.TB, path string) []byte {
	t.Helper()
	resp, err := s.client.Get("https://" + s.mgmt + path)
	if err != nil {
		t.Fatalf("pebble management %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("pebble management %s: %v %s %s", path, err, resp.Status, b)
	}
	return b
}

func (s *Server) fetchCert(t testing.TB, path string) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(s.get(t, path))
	if block == nil {
		t.Fatalf("pebble management %s: no PEM", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("pebble management %s: %v", path, err)
	}
	return c
}

func (s *Server) fetchKey(t testing.TB, path string) crypto.Signer {
	t.Helper()
	block, _ := pem.Decode(s.get(t, path))
	if block == nil {
		t.Fatalf("pebble management %s: no PEM", path)
	}
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		return k.(crypto.Signer)
	}
	if k, err := x509.ParseECPrivateKey(block.Bytes); err == nil {
		return k
	}
	k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil {
		t.Fatalf("pebble management %s: %v", path, err)
	}
	return k
}

// writeListenerCert makes the throwaway certificate Pebble's own HTTPS listeners present.
func writeListenerCert(t testing.TB, certFile, keyFile string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "pebbletest listener"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int { return freePort(t) }

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func freeUDPPort(t testing.TB) int {
	t.Helper()
	for {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		pc.Close()
		// challtestsrv serves DNS on UDP and TCP at the same port: both must be free.
		if ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			ln.Close()
			return port
		}
	}
}

// WaitFor polls cond until it holds or timeout passes; it never sleeps longer than needed.
func WaitFor(ctx context.Context, timeout time.Duration, cond func() bool) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(25 * time.Millisecond)
	defer t.Stop()
	for {
		if cond() {
			return true
		}
		select {
		case <-ctx.Done():
			return cond()
		case <-t.C:
		}
	}
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// prefixWriter tags each line of a child's output with its name in the shared log.
type prefixWriter struct {
	prefix  string
	buf     *lockedBuffer
	midLine bool
}

func (w *prefixWriter) Write(p []byte) (int, error) {
	w.buf.mu.Lock()
	defer w.buf.mu.Unlock()
	for _, line := range bytes.SplitAfter(p, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		if !w.midLine {
			w.buf.buf.WriteString(w.prefix)
		}
		w.buf.buf.Write(line)
		w.midLine = line[len(line)-1] != '\n'
	}
	return len(p), nil
}
