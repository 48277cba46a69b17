package doctor

import (
	"fmt"
	"path"
	"strconv"
	"strings"
)

// usesReverb: the app is set up for the reverb connection (or its credentials are present).
func (p *project) usesReverb(b broadcaster) bool {
	return b.name == "reverb" || p.has("REVERB_APP_KEY") || p.has("REVERB_APP_ID") || p.has("REVERB_HOST")
}

// selfHostedPusher: the pusher connection pointed at a server of one's own (PUSHER_HOST set).
func (p *project) selfHostedPusher(b broadcaster) bool {
	return b.name == "pusher" && p.has("PUSHER_HOST")
}

// checkCredentials: laravel-config.md §5 #6. An empty key answers every socket with 4001, an
// empty secret signs every publish wrongly (401); a short secret can be guessed.
func (p *project) checkCredentials(b broadcaster) {
	var prefixes []string
	if p.usesReverb(b) {
		prefixes = append(prefixes, "REVERB_APP_")
	}
	if p.selfHostedPusher(b) {
		prefixes = append(prefixes, "PUSHER_APP_")
	}
	for _, prefix := range prefixes {
		for _, part := range []string{"ID", "KEY", "SECRET"} {
			key := prefix + part
			fresh := randomToken(20)
			if part == "ID" {
				fresh = randomAppID()
			}
			fix := fmt.Sprintf("%s=%s   (a fresh random value; %s)", key, fresh, credentialSharing(prefix, part))
			v, line, ok := p.get(key)
			switch {
			case !ok:
				p.add(Error, "app-credentials-missing", line, fmt.Sprintf("%s is not set: %s", key, credentialEffect(part)), fix)
			case v == "":
				p.add(Error, "app-credentials-empty", line, fmt.Sprintf("%s is empty: %s", key, credentialEffect(part)), fix)
			case part != "ID" && len(v) < 16:
				what := "anyone who guesses it can publish to every channel and sign private-channel subscriptions"
				if part == "KEY" {
					what = "keys this short collide and look like placeholders; reverb:install generates 20 characters"
				}
				p.add(Warning, "app-credentials-short", line, fmt.Sprintf("%s has %d characters (fewer than 16): %s", key, len(v), what), fix)
			}
		}
	}
}

// credentialSharing says who must hold the same value. Only the key reaches the browser; the
// secret signs publishes and private subscriptions and stays on the servers.
func credentialSharing(prefix, part string) string {
	switch part {
	case "KEY":
		return "the server, the broadcaster and the browser bundle (VITE_" + prefix + "KEY) must all use the same"
	case "SECRET":
		return "the server and the broadcaster must use the same; keep it on the servers, out of the front-end build"
	}
	return "the server and the broadcaster must use the same"
}

func credentialEffect(part string) string {
	switch part {
	case "ID":
		return "the broadcaster posts to /apps//events and gets 404"
	case "KEY":
		return "browsers connect to /app/ and are refused with 4001 (application does not exist)"
	}
	return "every publish is signed with an empty secret and refused with 401"
}

// endpoint is one side's idea of where the server is: host, port and scheme variables.
type endpoint struct {
	who                       string // "the publisher", "the browser"
	hostKey, portKey, schKey  string
	host, port, scheme        string
	hostLine, portLine, schLn int
	portSet, schemeSet        bool
}

func (p *project) endpoint(who, prefix, hostName string) endpoint {
	e := endpoint{who: who, hostKey: prefix + hostName, portKey: prefix + "PORT", schKey: prefix + "SCHEME"}
	e.host, e.hostLine, _ = p.get(e.hostKey)
	e.port, e.portLine, e.portSet = p.get(e.portKey)
	e.scheme, e.schLn, e.schemeSet = p.get(e.schKey)
	e.portSet = e.portSet && e.port != ""
	e.schemeSet = e.schemeSet && e.scheme != ""
	if !e.schemeSet {
		e.scheme = "https" // config/broadcasting.php and Echo both default to https
	}
	if !e.portSet {
		e.port = "443" // REVERB_PORT's config default; Echo: wssPort ?? 443
		if e.scheme == "http" {
			e.port = "80"
		}
	}
	return e
}

// checkAddresses: laravel-config.md §5 #3, #4, #7.
func (p *project) checkAddresses(b broadcaster) {
	if p.usesReverb(b) {
		pub := p.endpoint("the publisher", "REVERB_", "HOST")
		if !p.checkEndpointSyntax(pub) {
			return
		}
		if sp, line, ok := p.get("REVERB_SERVER_PORT"); ok && sp != "" && !validPort(sp) {
			p.add(Error, "invalid-port", line, fmt.Sprintf("REVERB_SERVER_PORT=%s is not a port number (1-65535)", sp), "REVERB_SERVER_PORT=8080")
		}
		if pub.host == "" && b.name == "reverb" {
			p.add(Error, "reverb-host-missing", pub.hostLine, "REVERB_HOST is empty: the broadcaster has no host to post events to", "REVERB_HOST="+p.suggestHost())
		}
		p.checkPortConfusion(pub)
		p.checkProductionHost(pub)
	}
	if p.selfHostedPusher(b) {
		p.checkEndpointSyntax(p.endpoint("the publisher", "PUSHER_", "HOST"))
	}
	if p.has("VITE_REVERB_HOST") || p.has("VITE_REVERB_PORT") || p.has("VITE_REVERB_SCHEME") {
		p.checkEndpointSyntax(p.endpoint("the browser", "VITE_REVERB_", "HOST"))
	}
}

func validPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n > 0 && n < 65536
}

// checkEndpointSyntax reports a scheme or port that cannot work, and scheme/port pairs that
// speak plain HTTP to the TLS port or TLS to the plain one (#7). It returns false when the values
// are unusable for further checks.
func (p *project) checkEndpointSyntax(e endpoint) bool {
	ok := true
	if e.scheme != "http" && e.scheme != "https" {
		p.add(Error, "invalid-scheme", e.schLn, fmt.Sprintf("%s=%s: only http and https are understood (https means TLS: wss:// for browsers)", e.schKey, e.scheme), e.schKey+"=https")
		ok = false
	}
	if !validPort(e.port) {
		p.add(Error, "invalid-port", e.portLine, fmt.Sprintf("%s=%s is not a port number (1-65535)", e.portKey, e.port), e.portKey+"=443")
		ok = false
	}
	if !ok {
		return false
	}
	switch {
	case e.scheme == "http" && e.port == "443":
		p.add(Error, "scheme-port-mismatch", e.schLn, fmt.Sprintf("%s=http with %s=443: %s would speak plain HTTP to the TLS port", e.schKey, e.portKey, e.who), e.schKey+"=https")
	case e.scheme == "https" && e.port == "80":
		p.add(Error, "scheme-port-mismatch", e.schLn, fmt.Sprintf("%s=https with %s=80: %s would start TLS on the plain-HTTP port (cURL error 35 / SSL errors)", e.schKey, e.portKey, e.who), e.portKey+"=443")
	}
	return true
}

// checkPortConfusion: #3. REVERB_PORT is the public port (publisher and, through
// VITE_REVERB_PORT, browsers); REVERB_SERVER_PORT is where reverb:start binds. Copying the bind
// port into REVERB_PORT sends TLS to a port nothing terminates TLS on.
func (p *project) checkPortConfusion(e endpoint) {
	if e.scheme != "https" || e.port == "443" || isLoopback(e.host) || e.host == "" {
		return
	}
	sp, _, spOK := p.get("REVERB_SERVER_PORT")
	var why string
	switch {
	case spOK && sp == e.port:
		why = fmt.Sprintf("REVERB_PORT=%s equals REVERB_SERVER_PORT, the port the server binds", e.port)
	case !spOK && e.port == "8080":
		why = "REVERB_PORT=8080 is Reverb's default bind port (REVERB_SERVER_PORT)"
	default:
		return
	}
	p.add(Warning, "reverb-port-confusion", e.portLine, fmt.Sprintf(
		"%s, but REVERB_PORT is the public port: with REVERB_SCHEME=https the publisher and browsers would try TLS on https://%s:%s. frontdoor terminates TLS on 443 itself",
		why, e.host, e.port), "REVERB_PORT=443")
}

// checkProductionHost: #4 and #7 for production. A loopback REVERB_HOST is the install default;
// it is right only for the publisher when frontdoor runs on the same machine (laravel-config.md
// §7), never for browsers.
func (p *project) checkProductionHost(e endpoint) {
	if !p.production() {
		return
	}
	vite, viteLine, viteOK := p.get("VITE_REVERB_HOST")
	viteHost := p.viteValue("VITE_REVERB_HOST", vite)
	public := p.suggestHost()
	if isLoopback(e.host) {
		if viteOK && viteHost != "" && !isLoopback(viteHost) {
			p.add(Info, "reverb-host-loopback", e.hostLine, fmt.Sprintf(
				"REVERB_HOST=%s in production: the publisher posts over loopback, which works only when frontdoor runs on this machine and listens there (browsers use VITE_REVERB_HOST=%s)", e.host, viteHost), "")
		} else {
			p.add(Error, "reverb-host-loopback", e.hostLine, fmt.Sprintf(
				"REVERB_HOST=%s with APP_ENV=production: browsers built from it connect to their own machine, and the publisher reaches the server only if it runs here", e.host),
				fmt.Sprintf("REVERB_HOST=%s\nREVERB_PORT=443\nREVERB_SCHEME=https\n(then npm run build)", public))
		}
	} else if viteOK && isLoopback(viteHost) {
		p.add(Error, "vite-host-loopback", viteLine, fmt.Sprintf("VITE_REVERB_HOST=%s with APP_ENV=production: every visitor's browser would connect to its own machine", viteHost),
			"VITE_REVERB_HOST=\"${REVERB_HOST}\"\n(then npm run build)")
	}
	if e.scheme == "http" && !isLoopback(e.host) && e.host != "" {
		p.add(Warning, "scheme-http-production", e.schLn, fmt.Sprintf(
			"REVERB_SCHEME=http with APP_ENV=production and REVERB_HOST=%s: signed publishes and their payloads cross the network unencrypted, and pages served over https force wss:// anyway", e.host),
			"REVERB_SCHEME=https\nREVERB_PORT=443")
	}
}

// suggestHost is the host doctor proposes for REVERB_HOST: APP_URL's, else a placeholder.
func (p *project) suggestHost() string {
	if h := p.appHost(); h != "" && !isLoopback(h) {
		return h
	}
	return "app.example.com"
}

// checkOrigins: frontdoor reads allowed origins from FRONTDOOR_ALLOWED_ORIGINS or
// REVERB_ALLOWED_ORIGINS (comma lists of host patterns with *, as Reverb's allowed_origins).
// If APP_URL's host matches none, the app's own pages are refused with 4009.
func (p *project) checkOrigins() {
	key := "FRONTDOOR_ALLOWED_ORIGINS"
	list, line, ok := p.get(key)
	if !ok || strings.TrimSpace(list) == "" {
		key = "REVERB_ALLOWED_ORIGINS"
		if list, line, ok = p.get(key); !ok || strings.TrimSpace(list) == "" {
			return
		}
	}
	host := p.appHost()
	if host == "" {
		p.add(Info, "origin-unchecked", line, fmt.Sprintf("%s is set but APP_URL is not a URL, so doctor cannot tell whether the app's pages are allowed", key), "")
		return
	}
	for _, pat := range strings.Split(list, ",") {
		if originMatches(strings.TrimSpace(pat), host) {
			return
		}
	}
	hint := ""
	if strings.Contains(list, "://") {
		hint = " (patterns are host names like app.example.com or *.example.com, without a scheme)"
	}
	p.add(Error, "origin-not-allowed", line, fmt.Sprintf("%s=%s does not cover APP_URL's host %q: browsers on the app's own pages are refused with 4009%s", key, list, host, hint),
		fmt.Sprintf("%s=\"%s, %s\"", key, strings.TrimSpace(list), host))
}

// originMatches compares a host against one pattern exactly as package pusher does (and as
// Reverb's allowed_origins: the Origin's host only, "*" matching any run of characters,
// case-insensitive). A pattern written as a URL matches nothing there, so nothing here either.
func originMatches(pattern, host string) bool {
	pattern = strings.ToLower(pattern)
	if pattern == "*" {
		return true
	}
	ok, err := path.Match(pattern, strings.ToLower(host))
	return err == nil && ok
}
