package doctor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
)

// liveCheck talks to a running server with the .env's credentials: what the browser does (a
// WebSocket handshake with the key) and what the broadcaster does (a request signed with the
// secret), plus the TLS certificate both see.
type liveCheck struct {
	opts Options
	p    *project

	findings []Finding
	where    string // "https://host:port", the File of every live finding
}

func (lc *liveCheck) add(sev Severity, code, msg, fix string) {
	lc.findings = append(lc.findings, Finding{Severity: sev, Code: code, File: lc.where, Message: msg, Fix: fix})
}

// credentials are the app the publisher signs with: REVERB_APP_*, or PUSHER_APP_* when the
// pusher connection points at a self-hosted server.
func (lc *liveCheck) credentials() (prefix, id, key, secret string) {
	prefix = "REVERB_APP_"
	if !lc.p.has("REVERB_APP_KEY") && lc.p.has("PUSHER_APP_KEY") && lc.p.has("PUSHER_HOST") {
		prefix = "PUSHER_APP_"
	}
	if lc.p.file == nil {
		return prefix, "", "", ""
	}
	return prefix, lc.p.val(prefix + "ID"), lc.p.val(prefix + "KEY"), lc.p.val(prefix + "SECRET")
}

// derivedTarget is where the publisher posts: REVERB_SCHEME://REVERB_HOST:REVERB_PORT with
// REVERB_SERVER_PATH as the prefix (PUSHER_* for a self-hosted pusher connection); nil when the
// .env names no host.
func (lc *liveCheck) derivedTarget() *url.URL {
	prefix, hostKey := "REVERB_", "REVERB_HOST"
	if !lc.p.has("REVERB_HOST") && lc.p.has("PUSHER_HOST") {
		prefix, hostKey = "PUSHER_", "PUSHER_HOST"
	}
	e := lc.p.endpoint("the publisher", prefix, "HOST")
	if e.host == "" || (e.scheme != "http" && e.scheme != "https") || !validPort(e.port) {
		return nil
	}
	host := e.host
	if i := strings.Index(host, "://"); i >= 0 { // the PHP SDK strips a scheme from the host
		host = host[i+3:]
	}
	u := &url.URL{Scheme: e.scheme, Host: net.JoinHostPort(strings.Trim(host, "[]"), e.port)}
	if hostKey == "REVERB_HOST" {
		u.Path = strings.TrimRight(lc.p.val("REVERB_SERVER_PATH"), "/")
	}
	return u
}

func (lc *liveCheck) run(ctx context.Context, target *url.URL, explicit bool) []Finding {
	lc.where = target.Scheme + "://" + hostPort(target)
	addr := hostPort(target)
	d := net.Dialer{Timeout: lc.opts.Timeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		sev := Warning
		how := fmt.Sprintf("derived from the .env (%s)", lc.targetSource())
		if explicit {
			sev, how = Error, "given with --url"
		}
		lc.add(sev, "live-unreachable", fmt.Sprintf("cannot connect to %s, %s: %v; live checks skipped", addr, how, err),
			"start the server (frontdoor serve), or pass --url with the address it listens on")
		return lc.findings
	}
	conn.Close()

	tlsConf, ok := lc.tlsConfig()
	if !ok {
		return lc.findings
	}
	trust := trustPublic
	if target.Scheme == "https" {
		trust = lc.checkTLS(ctx, target, tlsConf)
		// The certificate has been judged; the credential checks below still run, so one
		// broken thing does not hide the others.
		tlsConf = tlsConf.Clone()
		tlsConf.InsecureSkipVerify = true
	}
	_, id, key, secret := lc.credentials()
	if key == "" {
		lc.add(Info, "live-credentials-missing", "the .env has no app key, so the WebSocket and API checks were skipped", "")
		return lc.findings
	}
	lc.checkWebSocket(ctx, target, tlsConf, key)
	if id == "" || secret == "" {
		lc.add(Info, "live-credentials-missing", "the .env has no app id or secret, so the signed API check was skipped", "")
		return lc.findings
	}
	lc.checkAPI(target, tlsConf, id, key, secret, trust)
	return lc.findings
}

// phpTrust is whether PHP, publishing with the Pusher SDK over Guzzle and cURL, would accept the
// server's certificate: cURL verifies against the system CA bundle unless the broadcaster's
// client_options say otherwise, and doctor's own --insecure or --ca-file change nothing for PHP.
type phpTrust int

const (
	trustPublic     phpTrust = iota // valid, and trusted by the system roots (or plain HTTP)
	trustCAFileOnly                 // valid, but only trusted through --ca-file
	trustFails                      // expired, wrong name or untrusted: cURL error 60
)

func (lc *liveCheck) targetSource() string {
	if lc.p.has("REVERB_HOST") {
		return "REVERB_SCHEME, REVERB_HOST, REVERB_PORT"
	}
	return "PUSHER_SCHEME, PUSHER_HOST, PUSHER_PORT"
}

// tlsConfig builds the client configuration; --ca-file adds roots for private CAs.
func (lc *liveCheck) tlsConfig() (*tls.Config, bool) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if lc.opts.CAFile != "" {
		pem, err := os.ReadFile(lc.opts.CAFile)
		if err != nil {
			lc.add(Error, "ca-file-unreadable", fmt.Sprintf("--ca-file: %v", err), "")
			return nil, false
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			lc.add(Error, "ca-file-unreadable", fmt.Sprintf("--ca-file %s: no PEM certificate in it", lc.opts.CAFile), "")
			return nil, false
		}
		conf.RootCAs = pool
	}
	return conf, true
}

// expirySoon is when an expiring certificate becomes a warning: Let's Encrypt renews at 30 days
// left, so under 14 means renewal has been failing for two weeks.
const expirySoon = 14 * 24 * time.Hour

// checkTLS reports the certificate the server presents for the target's name: validity dates,
// names, trust, days left.
func (lc *liveCheck) checkTLS(ctx context.Context, target *url.URL, base *tls.Config) phpTrust {
	host := target.Hostname()
	conf := base.Clone()
	conf.ServerName = host
	conf.InsecureSkipVerify = true // verified below, piece by piece, to say exactly what is wrong
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: lc.opts.Timeout}, Config: conf}
	conn, err := d.DialContext(ctx, "tcp", hostPort(target))
	if err != nil {
		lc.add(Error, "tls-handshake-failed", fmt.Sprintf("TLS handshake with %s failed: %v", hostPort(target), err),
			"check that the port serves TLS (REVERB_SCHEME=https needs a TLS port) and that a certificate exists for "+host)
		return trustFails
	}
	state := conn.(*tls.Conn).ConnectionState()
	conn.Close()
	if len(state.PeerCertificates) == 0 {
		lc.add(Error, "tls-handshake-failed", "the server sent no certificate", "")
		return trustFails
	}
	leaf := state.PeerCertificates[0]
	now := lc.opts.now()
	names := strings.Join(leaf.DNSNames, ", ")
	if names == "" {
		names = leaf.Subject.CommonName
	}
	left := leaf.NotAfter.Sub(now)
	days := int(left.Hours() / 24)
	bad := false

	switch {
	case now.After(leaf.NotAfter):
		lc.add(Error, "tls-expired", fmt.Sprintf("the certificate for %s expired on %s (%d days ago)", host, leaf.NotAfter.UTC().Format(time.DateOnly), -days),
			"renew it: with frontdoor's automatic TLS check that ports 80/443 reach it and the ACME account email is valid; with certificate files replace them and send SIGHUP")
		bad = true
	case now.Before(leaf.NotBefore):
		lc.add(Error, "tls-not-yet-valid", fmt.Sprintf("the certificate for %s is valid only from %s; is this machine's clock right?", host, leaf.NotBefore.UTC().Format(time.RFC3339)), "")
		bad = true
	}
	if err := leaf.VerifyHostname(host); err != nil {
		lc.add(Error, "tls-name-mismatch", fmt.Sprintf("the certificate does not cover %s (it names: %s): browsers refuse wss://%s", host, names, host),
			fmt.Sprintf("issue a certificate for %s (frontdoor: --domain %s)", host, host))
		bad = true
	}
	inter := x509.NewCertPool()
	for _, c := range state.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	// Trust is judged at a moment inside the validity window so that expiry is not reported twice.
	at := now
	if at.After(leaf.NotAfter) || at.Before(leaf.NotBefore) {
		at = leaf.NotBefore.Add(time.Second)
	}
	trust := trustPublic
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: base.RootCAs, Intermediates: inter, CurrentTime: at}); err != nil {
		trust = trustFails
		if lc.opts.Insecure {
			lc.add(Info, "tls-untrusted", fmt.Sprintf("the certificate is not trusted (%v); accepted for doctor's checks because of --insecure (PHP still refuses it)", err), "")
		} else {
			lc.add(Error, "tls-untrusted", fmt.Sprintf("the certificate for %s is not trusted: %v; browsers and the broadcaster (PHP, cURL error 60) refuse it", host, err),
				"use a certificate from a public CA (frontdoor --tls auto); for a private CA, publish over the loopback --listen or trust the CA in the broadcaster's client_options (README, \"The broadcaster over TLS\"); doctor --ca-file ca.pem makes doctor trust it too")
			bad = true
		}
	} else if base.RootCAs != nil {
		if _, err := leaf.Verify(x509.VerifyOptions{Intermediates: inter, CurrentTime: at}); err != nil {
			trust = trustCAFileOnly // trusted through --ca-file alone
		}
	}
	if bad {
		return trustFails
	}
	if left < expirySoon {
		lc.add(Warning, "tls-expiring-soon", fmt.Sprintf("the certificate for %s expires in %d days (%s): renewal is not happening", host, days, leaf.NotAfter.UTC().Format(time.DateOnly)),
			"check frontdoor's log for ACME errors (ports 80 and 443 must reach it), or replace the certificate files and send SIGHUP")
		return trust
	}
	lc.add(Info, "tls-ok", fmt.Sprintf("certificate for %s (names: %s; issuer: %s) valid until %s, %d days left", host, names, leaf.Issuer.CommonName, leaf.NotAfter.UTC().Format(time.DateOnly), days), "")
	return trust
}
