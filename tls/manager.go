package tls

import (
	"context"
	cryptotls "crypto/tls"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// Manager hands certificates to the TLS listener according to the configured mode.
type Manager struct {
	cfg Config
	log zerolog.Logger

	acme *autocert.Manager            // auto mode
	cert atomic.Pointer[loadedCert]   // files and self-signed modes
	mod  atomic.Pointer[fileVersions] // files mode: what was loaded, to notice changes

	logMu   sync.Mutex
	logLast map[string]time.Time // rate-limited log line (refusal, issuance failure) → when last written

	od      *onDemand // auto mode with Config.OnDemand: names the app allows, ordered at first handshake
	ocsp    *stapler
	tickets *ticketKeys // session ticket keys shared through --cert-cache; nil: crypto/tls's own
	served  sync.Map    // auto mode: name → *x509.Certificate last served, to log each new certificate once
}

// New prepares the certificates for cfg (which must have been validated).
func New(cfg Config, log zerolog.Logger) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Manager{cfg: cfg, log: log, logLast: map[string]time.Time{}, ocsp: newStapler(log)}
	switch cfg.Mode {
	case ModeAuto:
		if err := os.MkdirAll(cfg.CacheDir, 0o700); err != nil {
			return nil, fmt.Errorf("--cert-cache: %w", err)
		}
		if err := os.Chmod(cfg.CacheDir, 0o700); err != nil {
			return nil, fmt.Errorf("--cert-cache: %w", err)
		}
		client := &acme.Client{DirectoryURL: cfg.directoryURL()}
		if cfg.ACMECARoot != "" {
			hc, err := httpClientTrusting(cfg.ACMECARoot)
			if err != nil {
				return nil, err
			}
			client.HTTPClient = hc
		}
		m.acme = &autocert.Manager{
			Prompt:     autocert.AcceptTOS,
			Email:      cfg.Email,
			Cache:      autocert.DirCache(cfg.CacheDir),
			HostPolicy: m.hostPolicy(autocert.HostWhitelist(cfg.Domains...)),
			Client:     client,
		}
		if cfg.OnDemand != nil {
			m.od = newOnDemand(*cfg.OnDemand)
			m.acme.HostPolicy = m.hostPolicy(m.od.policy(autocert.HostWhitelist(cfg.Domains...)))
		}
		log.Info().Strs("domains", cfg.Domains).Str("directory", client.DirectoryURL).Str("cache", cfg.CacheDir).
			Msg("automatic certificates: the first TLS handshake for each name obtains its certificate")
	case ModeFiles:
		if err := m.Reload(); err != nil {
			return nil, err
		}
	case ModeSelfSigned:
		var lc *loadedCert
		var err error
		if cfg.CacheDir != "" {
			lc, err = keptSelfSigned(cfg.CacheDir, cfg.Domains, time.Now(), log)
		} else {
			lc, err = selfSigned(cfg.Domains)
		}
		if err != nil {
			return nil, err
		}
		m.cert.Store(lc)
		log.Warn().Strs("names", lc.names).Msg("self-signed certificate: for local HTTPS testing only; browsers will warn")
	}
	m.tickets = newTicketKeys(cfg.CacheDir, time.Now, log)
	return m, nil
}

// TLSConfig is the listener's configuration. Built here rather than taken from autocert's
// TLSConfig so that ALPN offers exactly what is served: h2 (unless HTTP2 is off) for the
// connections SplitH2 hands to the HTTP/2 server, http/1.1 for fasthttp, and acme-tls/1 for
// TLS-ALPN-01 challenges. The server's order wins over the client's (crypto/tls picks the first
// of ours the client also offers), so a browser offering both gets h2.
//
// Key exchange and certificates are left to crypto/tls's defaults on purpose: since Go 1.24 the
// order of CurvePreferences is ignored and the server picks, among the groups the client sent a
// key share for, the hybrid post-quantum X25519MLKEM768 first, then X25519, then P-256, so X25519
// is already the first classical choice and listing curves could only remove the post-quantum one.
// Certificates are ECDSA P-256 in every mode this package makes (autocert's default without
// ForceRSA, self-signed), the cheapest signature for the server to make.
func (m *Manager) TLSConfig() *cryptotls.Config {
	protos := []string{"http/1.1", acme.ALPNProto}
	if m.cfg.HTTP2 {
		protos = append([]string{ALPNH2}, protos...)
	}
	cfg := &cryptotls.Config{
		MinVersion:     cryptotls.VersionTLS12,
		NextProtos:     protos,
		GetCertificate: m.getCertificate,
	}
	m.tickets.use(cfg)
	return cfg
}

// ALPNH2 is HTTP/2's ALPN protocol id over TLS (RFC 9113 §3.2).
const ALPNH2 = "h2"

func (m *Manager) getCertificate(hello *cryptotls.ClientHelloInfo) (*cryptotls.Certificate, error) {
	if m.acme != nil {
		if hello.ServerName == "" {
			m.logRefused("(no SNI)")
			return nil, errRefused{}
		}
		cert, err := m.acmeCertificate(hello)
		if err != nil {
			m.issueFailed(hello, err)
			return nil, err
		}
		// autocert matches names case-insensitively (IDNA lookup), so the log keys on the same form.
		m.noteServed(strings.ToLower(hello.ServerName), cert)
		return m.ocsp.staple(cert), nil
	}
	lc := m.cert.Load()
	if lc == nil {
		return nil, errors.New("tls: no certificate loaded")
	}
	return m.ocsp.staple(lc.cert), nil
}

// Run watches certificate files for changes and logs approaching expiry until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	nextExpiryCheck := time.Now().Add(time.Minute) // after the first issuance has had its chance
	nextTicketCheck := time.Now().Add(ticketKeysCheck)
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if m.cfg.Mode == ModeFiles && m.filesChanged() {
				if err := m.Reload(); err != nil {
					m.log.Error().Err(err).Msg("certificate files changed but could not be loaded; keeping the current certificate")
				}
			}
			if now.After(nextExpiryCheck) {
				m.checkExpiry(now)
				nextExpiryCheck = now.Add(time.Hour)
			}
			if now.After(nextTicketCheck) {
				m.tickets.check()
				nextTicketCheck = now.Add(ticketKeysCheck)
			}
		}
	}
}
