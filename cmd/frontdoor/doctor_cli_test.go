package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// writePrivateCA makes a CA and a localhost certificate it signs, as PEM files in dir.
func writePrivateCA(t *testing.T, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test private CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(90 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTpl, caTpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(90 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	write := func(name, typ string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("cert.pem", "CERTIFICATE", der), write("key.pem", "PRIVATE KEY", keyDER)
}

// The issue #20 set-up, with the real binary both ways: `serve --tls-cert --tls-key` (files mode
// without saying so) and a broadcaster publishing over https:// to a private-CA certificate.
// doctor's --ca-file is a real flag, and doctor never promises publishes PHP would refuse.
func TestDoctorOverPrivateCA(t *testing.T) {
	dir := t.TempDir()
	caFile, certFile, keyFile := writePrivateCA(t, dir)
	https := freeAddr(t)
	p := startFrontdoor(t, dir, "serve", "--tls-cert", certFile, "--tls-key", keyFile, "--https-addr", https,
		"--http-addr", freeAddr(t), "--admin", "off", "--env-file", "", "--app-id", "123456", "--app-key", "q8v2mfk3w9xh4tlp0zna", "--app-secret", "7hd0s2kq9vzm4xwe1rtb")
	p.waitLog(t, `"listening"`, `"listener":"https"`)
	_, port, _ := net.SplitHostPort(https)
	env := filepath.Join(dir, ".env")
	if err := os.WriteFile(env, []byte("APP_ENV=local\nBROADCAST_CONNECTION=reverb\nREVERB_APP_ID=123456\nREVERB_APP_KEY=q8v2mfk3w9xh4tlp0zna\n"+
		"REVERB_APP_SECRET=7hd0s2kq9vzm4xwe1rtb\nREVERB_HOST=localhost\nREVERB_PORT="+port+"\nREVERB_SCHEME=https\n"+
		"VITE_REVERB_APP_KEY=\"${REVERB_APP_KEY}\"\nVITE_REVERB_HOST=\"${REVERB_HOST}\"\nVITE_REVERB_PORT=\"${REVERB_PORT}\"\nVITE_REVERB_SCHEME=\"${REVERB_SCHEME}\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	doctor := func(extra ...string) (int, map[string]string) {
		t.Helper()
		cmd := exec.Command(frontdoorBin(t), append([]string{"doctor", "--env-file", env, "--json"}, extra...)...)
		out, _ := cmd.Output()
		var rep struct {
			Findings []struct{ Severity, Code string } `json:"findings"`
		}
		if err := json.Unmarshal(out, &rep); err != nil {
			t.Fatalf("doctor %v: %v\n%s", extra, err, out)
		}
		codes := map[string]string{}
		for _, f := range rep.Findings {
			if codes[f.Code] != "error" {
				codes[f.Code] = f.Severity
			}
		}
		return cmd.ProcessState.ExitCode(), codes
	}
	code, codes := doctor()
	if code != 1 || codes["tls-untrusted"] != "error" || codes["api-tls-untrusted"] != "error" || codes["api-ok"] != "" {
		t.Errorf("without --ca-file: exit %d, findings %v; want tls-untrusted and api-tls-untrusted errors, no api-ok", code, codes)
	}
	code, codes = doctor("--ca-file", caFile)
	if code != 0 || codes["tls-ok"] != "info" || codes["api-ok-private-ca"] != "warning" || codes["api-ok"] != "" {
		t.Errorf("with --ca-file: exit %d, findings %v; want tls-ok and the api-ok-private-ca warning", code, codes)
	}
}
