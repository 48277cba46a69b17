package doctor

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCA is a private CA made in the test, with the PEM file --ca-file takes.
type testCA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	pemPath string
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "doctor test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pemPath: path}
}

// leaf issues a server certificate for names, valid from notBefore for lifetime.
func (ca *testCA) leaf(t *testing.T, names []string, ips []net.IP, notBefore time.Time, lifetime time.Duration) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		IPAddresses:  ips,
		NotBefore:    notBefore,
		NotAfter:     notBefore.Add(lifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// tlsServer completes TLS handshakes on a loopback port with cert and returns the address.
func tlsServer(t *testing.T, cert tls.Certificate) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				_ = c.(*tls.Conn).Handshake()
			}()
		}
	}()
	return ln.Addr().String()
}

func findingWith(rep *Report, code string) (Finding, bool) {
	for _, f := range rep.Findings {
		if f.Code == code {
			return f, true
		}
	}
	return Finding{}, false
}

// TestTLSChecks runs the certificate checks against a real TLS listener with certificates made
// here: trusted, untrusted, expiring, expired, and for the wrong name.
func TestTLSChecks(t *testing.T) {
	ca := newTestCA(t)
	now := time.Now()
	good := ca.leaf(t, []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, now.Add(-time.Hour), 90*24*time.Hour)
	wrongName := ca.leaf(t, []string{"app.example.com"}, nil, now.Add(-time.Hour), 90*24*time.Hour)
	goodAddr, wrongAddr := tlsServer(t, good), tlsServer(t, wrongName)

	tests := []struct {
		name     string
		addr     string
		caFile   bool
		insecure bool
		now      time.Time
		code     string
		sev      Severity
	}{
		{"trusted", goodAddr, true, false, now, "tls-ok", Info},
		{"untrusted", goodAddr, false, false, now, "tls-untrusted", Error},
		{"untrusted but insecure", goodAddr, false, true, now, "tls-untrusted", Info},
		{"expiring in 5 days", goodAddr, true, false, now.Add(85 * 24 * time.Hour), "tls-expiring-soon", Warning},
		{"expired", goodAddr, true, false, now.Add(91 * 24 * time.Hour), "tls-expired", Error},
		{"wrong name", wrongAddr, true, false, now, "tls-name-mismatch", Error},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := Options{URL: "https://" + tt.addr, Insecure: tt.insecure, Timeout: 5 * time.Second, lookupEnv: noEnv}
			opts.now = func() time.Time { return tt.now }
			if tt.caFile {
				opts.CAFile = ca.pemPath
			}
			rep, err := Check(context.Background(), opts)
			if err != nil {
				t.Fatal(err)
			}
			f, ok := findingWith(rep, tt.code)
			if !ok || f.Severity != tt.sev {
				t.Fatalf("want %s %s; got:%s", tt.sev, tt.code, dump(rep))
			}
			if tt.code == "tls-ok" {
				if _, bad := findingWith(rep, "tls-untrusted"); bad {
					t.Fatalf("trusted certificate reported untrusted:%s", dump(rep))
				}
			}
			if tt.code == "tls-expiring-soon" && !strings.Contains(f.Message, "expires in 4 days") && !strings.Contains(f.Message, "expires in 5 days") {
				t.Fatalf("message lacks the days left: %s", f.Message)
			}
		})
	}
}

// TestLiveUnreachable: an explicit --url nobody answers is an error; one derived from the .env
// is a warning (the server may simply not run on this machine).
func TestLiveUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // a port that was free a moment ago: connections are refused

	rep, err := Check(context.Background(), Options{URL: "http://" + addr, Timeout: 2 * time.Second, lookupEnv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	if f, ok := findingWith(rep, "live-unreachable"); !ok || f.Severity != Error {
		t.Fatalf("explicit url:%s", dump(rep))
	}

	dir := t.TempDir()
	host, port, _ := net.SplitHostPort(addr)
	env := "REVERB_APP_ID=1\nREVERB_APP_KEY=k\nREVERB_APP_SECRET=s\nREVERB_HOST=" + host + "\nREVERB_PORT=" + port + "\nREVERB_SCHEME=http\n"
	if err := os.WriteFile(filepath.Join(dir, ".env"), []byte(env), 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err = Check(context.Background(), Options{EnvFile: filepath.Join(dir, ".env"), Timeout: 2 * time.Second, lookupEnv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	if f, ok := findingWith(rep, "live-unreachable"); !ok || f.Severity != Warning {
		t.Fatalf("derived url:%s", dump(rep))
	}
	if rep.URL != "http://"+addr {
		t.Fatalf("derived URL %q, want http://%s", rep.URL, addr)
	}
}
