package proxy

import (
	"bytes"
	"net"
	"path"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"
)

// serverSoftware is SERVER_SOFTWARE (Nginx sends nginx/$version).
const serverSoftware = "frontdoor"

// fcgiHopByHop are request headers never passed as HTTP_*: the RFC 9110 §7.6.1 connection
// headers, and Proxy, which PHP would read as HTTP_PROXY and many HTTP clients then use as
// their proxy (httpoxy, CVE-2016-5385).
var fcgiHopByHop = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "Proxy"}

// appendParams appends the PARAMS name-value stream for ctx: Nginx's fastcgi_params, plus
// SCRIPT_FILENAME as Laravel's server block sets it ($realpath_root$fastcgi_script_name), as if
// try_files had sent the request to the front controller. Only the front controller ever runs:
// SCRIPT_FILENAME is always realRoot/index.php, whatever the path asks for. root is the
// configured document root, realRoot the same with symlinks resolved; serverName is
// SERVER_NAME (Handler.serverName: a configured name, never the client's when there are
// some); contentLength is the body length that will follow on STDIN.
func appendParams(b []byte, ctx *fasthttp.RequestCtx, c Client, root, realRoot, front, serverName string, contentLength int64) []byte {
	uri := ctx.Request.Header.RequestURI() // original, as Nginx's $request_uri
	_, query, _ := strings.Cut(string(uri), "?")
	if i := strings.IndexByte(query, '#'); i >= 0 {
		query = query[:i]
	}
	script := "/" + front
	docURI := script
	// PATH_INFO applies to /index.php/extra: the front controller named with a path after it.
	pathInfo := ""
	if clean := string(ctx.Path()); strings.HasPrefix(clean, script+"/") {
		pathInfo = clean[len(script):]
		docURI = clean
	}
	b = appendPair(b, "SCRIPT_FILENAME", path.Join(realRoot, front))
	b = appendPair(b, "QUERY_STRING", query)
	b = appendPair(b, "REQUEST_METHOD", ctx.Method())
	b = appendPair(b, "CONTENT_TYPE", ctx.Request.Header.ContentType())
	// CONTENT_LENGTH is empty without a body, as Nginx's $content_length: fasthttp reports 0
	// for a request that sent no Content-Length, so look at what was sent.
	sentLength := hasRawHeader(ctx.Request.Header.RawHeaders(), "Content-Length")
	if contentLength > 0 || sentLength || ctx.Request.Header.ContentLength() == -1 {
		b = appendPair(b, "CONTENT_LENGTH", strconv.FormatInt(contentLength, 10))
	} else {
		b = appendPair(b, "CONTENT_LENGTH", "")
	}
	b = appendPair(b, "SCRIPT_NAME", script)
	b = appendPair(b, "REQUEST_URI", uri)
	b = appendPair(b, "DOCUMENT_URI", docURI)
	b = appendPair(b, "DOCUMENT_ROOT", root)
	if pathInfo != "" {
		b = appendPair(b, "PATH_INFO", pathInfo)
		b = appendPair(b, "PATH_TRANSLATED", root+pathInfo)
	}
	b = appendPair(b, "SERVER_PROTOCOL", ctx.Request.Header.Protocol())
	scheme := "http"
	if c.HTTPS {
		scheme = "https"
		b = appendPair(b, "HTTPS", "on")
	}
	b = appendPair(b, "REQUEST_SCHEME", scheme)
	b = appendPair(b, "GATEWAY_INTERFACE", "CGI/1.1")
	b = appendPair(b, "SERVER_SOFTWARE", serverSoftware)
	// REMOTE_ADDR is the visitor as ResolveClient found it (Nginx's real_ip); its port is
	// known only when the visitor is the peer.
	raddr, rport := splitAddr(ctx.RemoteAddr())
	if c.Addr.IsValid() && c.Addr != c.Peer {
		raddr, rport = c.Addr.String(), ""
	}
	b = appendPair(b, "REMOTE_ADDR", raddr)
	b = appendPair(b, "REMOTE_PORT", rport)
	laddr, lport := splitAddr(ctx.LocalAddr())
	switch {
	case c.Port != "":
		lport = c.Port
	case c.HTTPS && !ctx.IsTLS(): // a trusted balancer took the TLS
		lport = "443"
	case !c.HTTPS && ctx.IsTLS():
		lport = "80"
	}
	b = appendPair(b, "SERVER_ADDR", laddr)
	b = appendPair(b, "SERVER_PORT", lport)
	b = appendPair(b, "SERVER_NAME", serverName)
	b = appendPair(b, "REDIRECT_STATUS", "200") // php-cgi's force-redirect check
	// HTTP_HOST is the request's host: for an absolute-form target ("GET http://a/ HTTP/1.1")
	// that is the target's, whatever the Host header says (RFC 9112 §3.2.2).
	// A trusted balancer's X-Forwarded-Host (one of the configured names) stands in for it.
	if c.Host != "" {
		b = appendPair(b, "HTTP_HOST", c.Host)
	} else {
		b = appendPair(b, "HTTP_HOST", ctx.Host())
	}
	return appendHeaderParams(b, &ctx.Request.Header, sentLength)
}

// hasRawHeader reports whether the header block as received has a field named name.
func hasRawHeader(raw []byte, name string) bool {
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		if k, _, ok := bytes.Cut(line, []byte(":")); ok && asciiEqualFold(bytes.TrimSpace(k), name) {
			return true
		}
	}
	return false
}

// appendHeaderParams appends every request header as HTTP_NAME (RFC 3875 §4.1.18). Repeated
// headers are joined (Cookie with "; ", others with ", ") as Nginx does. A header whose name
// holds an underscore or a character outside a token is dropped, as Nginx's default
// ignore_invalid_headers does: X-Forwarded_For must not land on HTTP_X_FORWARDED_FOR. The
// client's forwarding headers (clientForwarding) are dropped: PHP reads the client from
// REMOTE_ADDR, HTTPS and HTTP_HOST, which frontdoor sets.
func appendHeaderParams(b []byte, h *fasthttp.RequestHeader, sentLength bool) []byte {
	type kv struct {
		name  string
		value []byte
	}
	var arr [32]kv
	seen := arr[:0]
	skip := connectionTokens(h)
outer:
	for k, v := range h.All() {
		if !validFieldName(k) || strings.IndexByte(string(k), '_') >= 0 || asciiEqualFold(k, "Host") ||
			!sentLength && asciiEqualFold(k, "Content-Length") || clientForwarding(k) {
			continue
		}
		for _, hop := range fcgiHopByHop {
			if asciiEqualFold(k, hop) {
				continue outer
			}
		}
		for _, hop := range skip {
			if asciiEqualFold(k, hop) {
				continue outer
			}
		}
		name := cgiName(k)
		for i := range seen {
			if seen[i].name == name {
				sep := ", "
				if name == "HTTP_COOKIE" {
					sep = "; "
				}
				seen[i].value = append(append(seen[i].value, sep...), v...)
				continue outer
			}
		}
		seen = append(seen, kv{name, append([]byte(nil), v...)})
	}
	for _, p := range seen {
		b = appendPair(b, p.name, p.value)
	}
	return b
}

// connectionTokens are the header names listed in Connection, hop-by-hop by declaration.
func connectionTokens(h *fasthttp.RequestHeader) []string {
	c := h.Peek("Connection")
	if len(c) == 0 {
		return nil
	}
	var out []string
	for t := range strings.SplitSeq(string(c), ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}

// cgiName maps a header name to its CGI variable: HTTP_ + upper case, '-' as '_'.
func cgiName(k []byte) string {
	b := make([]byte, 0, 5+len(k))
	b = append(b, "HTTP_"...)
	for _, c := range k {
		switch {
		case c == '-':
			c = '_'
		case 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		}
		b = append(b, c)
	}
	return string(b)
}

func splitAddr(a net.Addr) (host, port string) {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.IP.String(), strconv.Itoa(a.Port)
	case nil:
		return "", ""
	}
	h, p, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String(), ""
	}
	return h, p
}
