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
// It also opens the plain and admin sockets (Listen) and guards every accept loop against running
// out of descriptors (GuardAccept): every socket frontdoor listens on shares one set of rules
// (SO_REUSEPORT for upgrades, keepalive set once on the listening socket, the privileged-port
// message, EMFILE as load), and the TLS listener is built on them, so they live beside it rather
// than in a package of their own.
//
// The package shadows crypto/tls, which it imports as cryptotls; callers import it as fdtls. The
// name is kept because it is the product's shape (cmd, proxy, pusher, tls): the one place a
// reader looks for what happens before the first HTTP byte.
// tls/pebbletest runs Pebble, the ACME test server, for tests here and in test/browser.
package tls
