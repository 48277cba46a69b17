package tls

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
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/ocsp"

	"github.com/frontdoorhq/frontdoor/tls/pebbletest"
)

// ocspResponder is a real OCSP responder (RFC 6960 Appendix A.1, POST) signing with the issuer's
// own key, as small CAs do.
type ocspResponder struct {
	srv      *httptest.Server
	requests atomic.Int32

	mu       sync.Mutex
	issuer   *x509.Certificate
	key      crypto.Signer
	status   int
	validity time.Duration
}

func startOCSPResponder(t *testing.T, validity time.Duration) *ocspResponder {
	r := &ocspResponder{status: ocsp.Good, validity: validity}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *ocspResponder) setIssuer(c *x509.Certificate, k crypto.Signer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.issuer, r.key = c, k
}

func (r *ocspResponder) setStatus(s int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status = s
}

func (r *ocspResponder) serve(w http.ResponseWriter, req *http.Request) {
	r.requests.Add(1)
	body, _ := io.ReadAll(req.Body)
	q, err := ocsp.ParseRequest(body)
	if err != nil || req.Header.Get("Content-Type") != "application/ocsp-request" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	tpl := ocsp.Response{
		Status:       r.status,
		SerialNumber: q.SerialNumber,
		ThisUpdate:   now.Add(-time.Second),
		NextUpdate:   now.Add(r.validity),
	}
	if r.status == ocsp.Revoked {
		tpl.RevokedAt, tpl.RevocationReason = now.Add(-time.Hour), ocsp.KeyCompromise
	}
	der, err := ocsp.CreateResponse(r.issuer, r.issuer, tpl, r.key)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/ocsp-response")
	w.Write(der)
}

// testCA makes a root and a leaf it signs that names the responder; the files hold leaf + root,
// as --tls-cert wants a full chain. The responder is set to sign as the root.
func testCA(t *testing.T, r *ocspResponder) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "frontdoor test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTpl, caTpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(caDER)
	r.setIssuer(root, caKey)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "ocsp.frontdoor.test"},
		DNSNames:  []string{"ocsp.frontdoor.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(23 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		OCSPServer: []string{r.srv.URL},
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, root, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "chain.pem"), filepath.Join(dir, "key.pem")
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})...)
	if err := os.WriteFile(certFile, chain, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	roots = x509.NewCertPool()
	roots.AddCert(root)
	return certFile, keyFile, roots
}

// staple handshakes as a client asking for OCSP (status_request) and returns the stapled
// response, checked against the leaf and its issuer, or nil when none was stapled.
func staple(t *testing.T, addr, name string, roots *x509.CertPool) *ocsp.Response {
	t.Helper()
	c, err := cryptotls.Dial("tcp", addr, &cryptotls.Config{ServerName: name, RootCAs: roots})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st := c.ConnectionState()
	if len(st.OCSPResponse) == 0 {
		return nil
	}
	chain := st.VerifiedChains[0]
	resp, err := ocsp.ParseResponseForCert(st.OCSPResponse, chain[0], chain[1])
	if err != nil {
		t.Fatalf("stapled response does not verify: %v", err)
	}
	return resp
}

// A leaf naming a responder gets a stapled, verified Good response; it is refreshed halfway
// through its validity; when the responder goes away, the staple stops before it expires.
func TestOCSPStapledRefreshedAndDropped(t *testing.T) {
	t.Parallel()
	r := startOCSPResponder(t, 4*time.Second)
	certFile, keyFile, roots := testCA(t, r)
	m, err := New(Config{Mode: "files", CertFile: certFile, KeyFile: keyFile, HTTPSAddr: ":443", HTTPAddr: ":80"}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, m)
	var first *ocsp.Response
	if !pebbletest.WaitFor(context.Background(), 30*time.Second, func() bool {
		first = staple(t, addr, "ocsp.frontdoor.test", roots)
		return first != nil
	}) {
		t.Fatalf("no OCSP response stapled; responder saw %d requests", r.requests.Load())
	}
	if first.Status != ocsp.Good {
		t.Fatalf("stapled status %d, want good", first.Status)
	}
	// Refreshed halfway (2 s) through the 4 s window: a later response replaces it.
	if !pebbletest.WaitFor(context.Background(), 30*time.Second, func() bool {
		s := staple(t, addr, "ocsp.frontdoor.test", roots)
		return s != nil && !bytes.Equal(s.Raw, first.Raw)
	}) {
		t.Fatalf("stapled response never refreshed; responder saw %d requests", r.requests.Load())
	}
	// Without a responder the held response runs out, and then nothing is stapled: an expired
	// response would make clients that check it refuse the handshake.
	r.srv.Close()
	var last *ocsp.Response
	if !pebbletest.WaitFor(context.Background(), 30*time.Second, func() bool {
		s := staple(t, addr, "ocsp.frontdoor.test", roots)
		if s != nil {
			last = s
		}
		return s == nil
	}) {
		t.Fatal("a response is still stapled 30 s after the responder went away")
	}
	if last != nil && time.Now().Before(last.NextUpdate) {
		t.Fatalf("staple dropped at %s, before its nextUpdate %s", time.Now(), last.NextUpdate)
	}
}

// A revoked certificate is not stapled and the operator is told, loudly.
func TestOCSPRevokedIsLogged(t *testing.T) {
	t.Parallel()
	r := startOCSPResponder(t, time.Hour)
	r.setStatus(ocsp.Revoked)
	certFile, keyFile, roots := testCA(t, r)
	logs := &syncBuffer{}
	m, err := New(Config{Mode: "files", CertFile: certFile, KeyFile: keyFile, HTTPSAddr: ":443", HTTPAddr: ":80"}, zerolog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, m)
	if staple(t, addr, "ocsp.frontdoor.test", roots) != nil {
		t.Fatal("stapled before any response was fetched")
	}
	if !pebbletest.WaitFor(context.Background(), 30*time.Second, func() bool { return strings.Contains(logs.String(), "REVOKED") }) {
		t.Fatalf("revocation not logged:\n%s", logs)
	}
	if staple(t, addr, "ocsp.frontdoor.test", roots) != nil {
		t.Fatal("a revoked response was stapled")
	}
}

// A certificate issued through ACME (Pebble, with a responder URL in its leaves) is stapled.
func TestPebbleOCSPStapled(t *testing.T) {
	t.Parallel()
	r := startOCSPResponder(t, time.Hour)
	s := newSite(t, tlsALPN01, pebbletest.Options{OCSPResponderURL: r.srv.URL})
	r.setIssuer(s.pebble.Intermediate, s.pebble.IntermediateKey)
	st, err := s.handshake(t, s.name)
	if err != nil {
		t.Fatalf("issuance: %v\n%s", err, s.pebble.Log())
	}
	s.checkIssued(t, st)
	if !pebbletest.WaitFor(context.Background(), 30*time.Second, func() bool {
		st, err := s.handshake(t, s.name)
		return err == nil && len(st.OCSPResponse) > 0
	}) {
		t.Fatalf("no staple on the ACME certificate; responder saw %d requests", r.requests.Load())
	}
	st, _ = s.handshake(t, s.name)
	resp, err := ocsp.ParseResponseForCert(st.OCSPResponse, st.PeerCertificates[0], s.pebble.Intermediate)
	if err != nil || resp.Status != ocsp.Good {
		t.Fatalf("staple: %v status %v", err, resp)
	}
	if !strings.Contains(s.logs.String(), `"message":"certificate loaded"`) {
		t.Fatalf("issuance not logged with its expiry:\n%s", s.logs)
	}
}
