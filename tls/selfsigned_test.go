package tls

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func servedDER(t *testing.T, m *Manager) []byte {
	t.Helper()
	c, err := m.getCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	return c.Certificate[0]
}

// --tls self-signed keeps its certificate in --cert-cache and serves the same one at the next
// start, so trusting it once is enough (issue #20: a new certificate at every start). A kept one
// near expiry or for other names is replaced.
func TestSelfSignedIsKeptAcrossStarts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	cfg := Config{Mode: "self-signed", Domains: []string{"app.test"}, CacheDir: dir, HTTPSAddr: ":443", HTTPAddr: ":80"}
	var logs bytes.Buffer
	first, err := New(cfg, zerolog.New(&logs))
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath := filepath.Join(dir, "self-signed.crt"), filepath.Join(dir, "self-signed.key")
	for _, p := range []string{certPath, keyPath} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", p, fi.Mode().Perm())
		}
	}
	for _, want := range []string{certPath, "certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n frontdoor -i " + certPath, "security add-trusted-cert"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log does not say %q:\n%s", want, logs.String())
		}
	}
	der := servedDER(t, first)

	second, err := New(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(servedDER(t, second), der) {
		t.Fatal("the second start made a new certificate instead of reusing the kept one")
	}

	other := cfg
	other.Domains = []string{"app.test", "admin.test"}
	third, err := New(other, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	renamed := servedDER(t, third)
	if bytes.Equal(renamed, der) {
		t.Fatal("the names changed but the kept certificate was reused")
	}
	if leaf, _ := x509.ParseCertificate(renamed); leaf.VerifyHostname("admin.test") != nil {
		t.Fatal("the new certificate does not cover the new name")
	}

	// A kept certificate 10 days from expiry is replaced.
	old, keyDER, err := newSelfSigned([]string{"app.test", "admin.test"}, time.Now().Add(-selfSignedLifetime+10*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := writeKept(dir, certPath, keyPath, old.cert.Certificate[0], keyDER); err != nil {
		t.Fatal(err)
	}
	fourth, err := New(other, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	fresh := servedDER(t, fourth)
	if bytes.Equal(fresh, old.cert.Certificate[0]) {
		t.Fatal("a certificate 10 days from expiry was reused")
	}
	raw, _ := os.ReadFile(certPath)
	if b, _ := pem.Decode(raw); b == nil || !bytes.Equal(b.Bytes, fresh) {
		t.Fatal("the replacement was not kept")
	}
}

// A --cert-cache it cannot write does not stop a development server: the certificate is then
// this run's alone, and the log says so.
func TestSelfSignedUnwritableCacheStillServes(t *testing.T) {
	blocker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	m, err := New(Config{Mode: "self-signed", CacheDir: filepath.Join(blocker, "certs"), HTTPSAddr: ":443", HTTPAddr: ":80"}, zerolog.New(&logs))
	if err != nil {
		t.Fatal(err)
	}
	servedDER(t, m)
	if !strings.Contains(logs.String(), "cannot keep it") {
		t.Fatalf("no warning about the cache:\n%s", logs.String())
	}
}
