package tls

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"golang.org/x/crypto/acme/autocert"
)

// Mode is where the TLS listener's certificates come from; the strings are --tls's values.
type Mode string

// The certificate sources.
const (
	ModeOff        Mode = "off"         // plain HTTP only
	ModeAuto       Mode = "auto"        // ACME (Let's Encrypt) for the configured names
	ModeFiles      Mode = "files"       // PEM files, reloaded on change
	ModeSelfSigned Mode = "self-signed" // a certificate made and kept here, for development
)

// Config selects how certificates are obtained. Field comments name the flags.
type Config struct {
	// Mode is where certificates come from (--tls).
	Mode Mode
	// Domains are the names certificates are obtained for; any other SNI is refused without
	// contacting the CA, so a scanner cannot burn its rate limits (--domain).
	Domains []string
	// Email is the ACME account contact (--acme-email).
	Email string
	// CacheDir keeps the ACME account and certificates, and the self-signed certificate so it is
	// trusted once rather than at every start; created 0700 (--cert-cache).
	CacheDir string
	// ACMEDirectory is the CA: "" or "production" for Let's Encrypt, "staging", or a URL (--acme-directory).
	ACMEDirectory string
	// ACMECARoot is a PEM file of a private CA that signs the directory's HTTPS certificate (--acme-ca-root).
	ACMECARoot string
	// CertFile and KeyFile are PEM files for files mode (--tls-cert, --tls-key).
	CertFile, KeyFile string
	// HTTPSAddr and HTTPAddr are the two listeners (--https-addr, --http-addr).
	HTTPSAddr, HTTPAddr string
	// HTTPRedirect sends plain HTTP to https with 308; false serves it (--http-redirect).
	HTTPRedirect bool
	// HSTS is the Strict-Transport-Security max-age; zero sends none (--hsts).
	HSTS time.Duration
	// HTTP2 offers h2 in ALPN beside http/1.1 (--http2); off, every client speaks HTTP/1.1.
	HTTP2 bool
	// OnDemand, in auto mode, also obtains certificates for names outside Domains that it allows
	// (tenants' domains); nil refuses every other name.
	OnDemand *OnDemand
}

// DefaultConfig is this package's defaults: TLS off, and everything --domain needs ready: the
// standard ports, redirects to https, Let's Encrypt production, certificates kept in
// /var/lib/frontdoor/certs (the systemd unit's StateDirectory).
func DefaultConfig() Config {
	return Config{
		Mode:         ModeOff,
		CacheDir:     "/var/lib/frontdoor/certs",
		HTTPSAddr:    ":443",
		HTTPAddr:     ":80",
		HTTPRedirect: true,
		HTTP2:        true,
	}
}

// Let's Encrypt's directories, selectable by name.
const (
	letsEncryptProduction = autocert.DefaultACMEDirectory
	letsEncryptStaging    = "https://acme-staging-v02.api.letsencrypt.org/directory"
)

// Validate names the flag and the value that is wrong.
func (c *Config) Validate() error {
	var errs []error
	switch c.Mode {
	case ModeOff:
		return nil
	case ModeAuto:
		if c.OnDemand != nil {
			if err := c.OnDemand.validate(); err != nil {
				errs = append(errs, err)
			}
		}
		if len(c.Domains) == 0 && c.OnDemand == nil {
			errs = append(errs, errors.New("--domain: none given; automatic certificates need at least one name, e.g. --domain app.example.com"))
		}
		for _, d := range c.Domains {
			if err := validDomain(d); err != nil {
				errs = append(errs, err)
			}
		}
		if c.CacheDir == "" {
			errs = append(errs, errors.New("--cert-cache: empty; certificates must be kept across restarts (Let's Encrypt rate-limits new ones)"))
		}
		switch c.ACMEDirectory {
		case "", "production", "staging":
		default:
			if u, err := url.Parse(c.ACMEDirectory); err != nil || u.Scheme != "https" || u.Host == "" {
				errs = append(errs, fmt.Errorf("--acme-directory: invalid value %q: want production, staging or an https:// directory URL", c.ACMEDirectory))
			}
		}
	case ModeFiles:
		if c.CertFile == "" || c.KeyFile == "" {
			errs = append(errs, errors.New("--tls-cert and --tls-key: both are needed with --tls files"))
		}
	case ModeSelfSigned:
	default:
		errs = append(errs, fmt.Errorf("--tls: invalid value %q: want off, auto, files or self-signed", c.Mode))
	}
	for _, a := range []struct{ flag, v string }{{"--https-addr", c.HTTPSAddr}, {"--http-addr", c.HTTPAddr}} {
		if _, _, err := net.SplitHostPort(a.v); err != nil {
			errs = append(errs, fmt.Errorf("%s: invalid value %q: want host:port or :port", a.flag, a.v))
		}
	}
	if c.OnDemand != nil && c.Mode != ModeAuto {
		errs = append(errs, errOnDemandConfig)
	}
	if c.HSTS < 0 {
		errs = append(errs, fmt.Errorf("--hsts: invalid value %s: want a duration ≥ 0", c.HSTS))
	}
	return errors.Join(errs...)
}

// validDomain applies autocert's own limits up front: a DNS name with a dot, not an IP.
func validDomain(d string) error {
	switch {
	case net.ParseIP(d) != nil:
		return fmt.Errorf("--domain: invalid value %q: ACME certificates are for DNS names, not IP addresses", d)
	case !strings.Contains(strings.Trim(d, "."), "."):
		return fmt.Errorf("--domain: invalid value %q: want a fully qualified name such as app.example.com", d)
	case strings.ContainsAny(d, "/: *"):
		return fmt.Errorf("--domain: invalid value %q: want a bare host name (no scheme, port or wildcard)", d)
	}
	return nil
}

func (c *Config) directoryURL() string {
	switch c.ACMEDirectory {
	case "", "production":
		return letsEncryptProduction
	case "staging":
		return letsEncryptStaging
	}
	return c.ACMEDirectory
}
