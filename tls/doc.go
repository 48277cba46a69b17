// Package tls is frontdoor's certificate side: automatic certificates from an ACME CA
// (golang.org/x/crypto/acme/autocert), certificate files reloaded without dropping connections,
// a self-signed mode for local HTTPS, the :80 handler (ACME http-01 and redirects to https), and
// listeners bound with SO_REUSEPORT for zero-downtime upgrades.
//
// The package shadows crypto/tls, which it imports as cryptotls; callers import it as fdtls.
package tls
