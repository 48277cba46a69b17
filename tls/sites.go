package tls

import (
	cryptotls "crypto/tls"
	"net"
)

// GetCertificateFunc picks the certificate for one handshake (crypto/tls's GetCertificate).
type GetCertificateFunc = func(*cryptotls.ClientHelloInfo) (*cryptotls.Certificate, error)

// GetCertificate is the certificate this Manager would serve for hello. cmd/frontdoor calls it
// per site: with several sites on one listener, the site owning the SNI name picks its Manager.
func (m *Manager) GetCertificate(hello *cryptotls.ClientHelloInfo) (*cryptotls.Certificate, error) {
	return m.getCertificate(hello)
}

// NewListenerFunc is NewListener with another certificate selection (several sites, each with
// its own Manager, behind one :443). Handshake failures are still reported by m.
func (m *Manager) NewListenerFunc(ln net.Listener, get GetCertificateFunc) net.Listener {
	cfg := m.TLSConfig()
	cfg.GetCertificate = get
	return &listener{Listener: ln, m: m, cfg: cfg}
}

// Refuse is the handshake answer for a name no site serves: logged once per name per hour, no
// certificate requested, and not logged again as a failed handshake.
func (m *Manager) Refuse(name string) error {
	if name == "" {
		m.logRefused("(no SNI)")
	} else {
		m.logRefused(name)
	}
	return errRefused{name: name}
}
