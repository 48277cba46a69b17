package tls

import (
	cryptotls "crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"
)

// loadedCert is a certificate held in memory (files and self-signed modes) with what logs and
// metrics report about it.
type loadedCert struct {
	cert    *cryptotls.Certificate
	expires time.Time
	names   []string
}

// fileVersions are the modification times of the loaded files, to notice a replacement.
type fileVersions struct{ cert, key time.Time }

// Reload re-reads the certificate files (SIGHUP and file changes). A failed reload keeps the
// certificate in use and says why; connections are never dropped, new handshakes use the new one.
func (m *Manager) Reload() error {
	if m.cfg.Mode != ModeFiles {
		return nil
	}
	certInfo, err1 := os.Stat(m.cfg.CertFile)
	keyInfo, err2 := os.Stat(m.cfg.KeyFile)
	pair, err := cryptotls.LoadX509KeyPair(m.cfg.CertFile, m.cfg.KeyFile)
	if err = errors.Join(err1, err2, err); err != nil {
		return fmt.Errorf("--tls-cert/--tls-key: %w", err)
	}
	lc, err := describe(&pair)
	if err != nil {
		return fmt.Errorf("--tls-cert %s: %w", m.cfg.CertFile, err)
	}
	m.cert.Store(lc)
	m.mod.Store(&fileVersions{certInfo.ModTime(), keyInfo.ModTime()})
	m.logExpiry(lc)
	return nil
}

func describe(c *cryptotls.Certificate) (*loadedCert, error) {
	leaf := c.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, err
		}
		c.Leaf = leaf // OCSP stapling and expiry checks read it
	}
	names := leaf.DNSNames
	if len(names) == 0 {
		names = []string{leaf.Subject.CommonName}
	}
	return &loadedCert{cert: c, expires: leaf.NotAfter, names: names}, nil
}

func (m *Manager) filesChanged() bool {
	v := m.mod.Load()
	ci, err1 := os.Stat(m.cfg.CertFile)
	ki, err2 := os.Stat(m.cfg.KeyFile)
	if v == nil || err1 != nil || err2 != nil {
		return false
	}
	return !ci.ModTime().Equal(v.cert) || !ki.ModTime().Equal(v.key)
}
