package tls

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	cryptotls "crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/rs/zerolog"
)

// The self-signed certificate's files in the --cert-cache directory, and how long before expiry
// it is replaced: a browser or OS that was told to trust it should not have to be told again at
// every start, only when it is about to expire or covers other names.
const (
	selfSignedCertFile = "self-signed.crt"
	selfSignedKeyFile  = "self-signed.key"
	selfSignedLifetime = 365 * 24 * time.Hour
	selfSignedRenew    = 30 * 24 * time.Hour
)

// selfSignedTemplate is the certificate selfSigned makes for names: every name as a DNS name or IP
// address, plus the loopback addresses.
func selfSignedTemplate(names []string, now time.Time) *x509.Certificate {
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	tpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: names[0], Organization: []string{"frontdoor self-signed"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(selfSignedLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tpl.IPAddresses = append(tpl.IPAddresses, ip)
		} else {
			tpl.DNSNames = append(tpl.DNSNames, n)
		}
	}
	return tpl
}

func defaultNames(names []string) []string {
	if len(names) == 0 {
		return []string{"localhost"}
	}
	return names
}

// selfSigned makes an in-memory ECDSA certificate for local HTTPS.
func selfSigned(names []string) (*loadedCert, error) {
	lc, _, err := newSelfSigned(defaultNames(names), time.Now())
	return lc, err
}

// newSelfSigned makes the certificate and returns it with its key in PKCS#8 DER, for keeping.
func newSelfSigned(names []string, now time.Time) (*loadedCert, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tpl := selfSignedTemplate(names, now)
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	leaf, _ := x509.ParseCertificate(der)
	c := &cryptotls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
	return &loadedCert{cert: c, expires: tpl.NotAfter, names: names}, keyDER, nil
}

// keptSelfSigned returns the self-signed certificate kept in dir when it still covers exactly
// names and is not near expiry, else a new one written there (certificate and key 0600). A
// directory it cannot use costs only the reuse: the certificate is then this run's alone.
func keptSelfSigned(dir string, names []string, now time.Time, log zerolog.Logger) (*loadedCert, error) {
	names = defaultNames(names)
	certPath, keyPath := filepath.Join(dir, selfSignedCertFile), filepath.Join(dir, selfSignedKeyFile)
	if pair, err := cryptotls.LoadX509KeyPair(certPath, keyPath); err == nil {
		if lc, err := describe(&pair); err == nil && reusable(lc.cert.Leaf, names, now) {
			lc.names = names
			log.Info().Str("cert", certPath).Time("expires", lc.expires).Strs("names", names).
				Msg("self-signed certificate: reusing the one kept from an earlier start; " + trustHint(certPath))
			return lc, nil
		}
	}
	lc, keyDER, err := newSelfSigned(names, now)
	if err != nil {
		return nil, err
	}
	if err := writeKept(dir, certPath, keyPath, lc.cert.Certificate[0], keyDER); err != nil {
		log.Warn().Err(err).Str("dir", dir).Msg("self-signed certificate: cannot keep it in --cert-cache; this run's certificate is new and will be again at the next start")
		return lc, nil
	}
	log.Info().Str("cert", certPath).Time("expires", lc.expires).Strs("names", names).
		Msg("self-signed certificate: made a new one and kept it for later starts; " + trustHint(certPath))
	return lc, nil
}

// reusable: the kept certificate is valid for at least selfSignedRenew more and names the same
// DNS names and addresses a new one would.
func reusable(leaf *x509.Certificate, names []string, now time.Time) bool {
	if now.Before(leaf.NotBefore) || leaf.NotAfter.Sub(now) < selfSignedRenew {
		return false
	}
	want := selfSignedTemplate(names, now)
	ips := func(l []net.IP) []string {
		out := make([]string, len(l))
		for i, ip := range l {
			out[i] = ip.String()
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(slices.Sorted(slices.Values(leaf.DNSNames)), slices.Sorted(slices.Values(want.DNSNames))) &&
		slices.Equal(ips(leaf.IPAddresses), ips(want.IPAddresses))
}

// trustHint tells how to make browsers and the OS trust the kept certificate.
func trustHint(certPath string) string {
	return fmt.Sprintf("to trust it: Chrome/Firefox on Linux `certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n frontdoor -i %s`, "+
		"macOS `sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain %s`", certPath, certPath)
}

// writeKept writes both files 0600 in a 0700 directory, each through a temporary file and a
// rename, so a crash never leaves a certificate beside a key that is not its own half-written.
func writeKept(dir, certPath, keyPath string, certDER, keyDER []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	write := func(path, typ string, der []byte) error {
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			return err
		}
		if err := os.Chmod(tmp, 0o600); err != nil { // WriteFile keeps an existing file's mode
			return err
		}
		return os.Rename(tmp, path)
	}
	return errors.Join(write(keyPath, "PRIVATE KEY", keyDER), write(certPath, "CERTIFICATE", certDER))
}
