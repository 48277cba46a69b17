// Package tls is frontdoor's certificate side: automatic certificates from an ACME CA
// (golang.org/x/crypto/acme/autocert) for an allow-list of names, certificate files reloaded
// without dropping connections, a self-signed mode for local HTTPS, OCSP stapling where the CA
// runs a responder, the :80 handler (ACME http-01 and 308 redirects to https), and listeners
// bound with SO_REUSEPORT for zero-downtime upgrades.
//
// Manager.NewListener is the HTTPS listener to hand fasthttp: it reports failed handshakes itself
// (refused names once per name per hour, issuance failures once a minute) instead of letting the
// HTTP server log each one.
//
// The package shadows crypto/tls, which it imports as cryptotls; callers import it as fdtls.
// tls/pebbletest runs Pebble, the ACME test server, for tests here and in test/browser.
package tls
