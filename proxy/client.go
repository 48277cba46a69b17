package proxy

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"
)

// The visitor's real address behind load balancers and CDNs (Nginx's real_ip module, Caddy's
// trusted_proxies). Only when the TCP peer (after the PROXY protocol, if the listener speaks
// it) is in the trusted list are its forwarding headers believed: X-Forwarded-For walked right
// to left, the first address that is not a trusted proxy being the client (everything to its
// left the client could have written itself); CF-Connecting-IP when there is no
// X-Forwarded-For; X-Forwarded-Proto, -Port and -Host. From anyone else they are dropped, as
// frontdoor does when it is the edge.

// TrustedProxies is a parsed trusted-proxies list: addresses, CIDRs and named presets.
type TrustedProxies struct {
	prefixes []netip.Prefix
}

// cloudflareRanges are Cloudflare's published edge ranges (cloudflare.com/ips-v4 and /ips-v6):
// 15 IPv4 and 7 IPv6 prefixes, the same in copies from 2023 and 2024. They change rarely; list new
// ones explicitly beside the preset until a release updates it.
var cloudflareRanges = []string{
	"173.245.48.0/20", "103.21.244.0/22", "103.22.200.0/22", "103.31.4.0/22", "141.101.64.0/18",
	"108.162.192.0/18", "190.93.240.0/20", "188.114.96.0/20", "197.234.240.0/22", "198.41.128.0/17",
	"162.158.0.0/15", "104.16.0.0/13", "104.24.0.0/14", "172.64.0.0/13", "131.0.72.0/22",
	"2400:cb00::/32", "2606:4700::/32", "2803:f800::/32", "2405:b500::/32", "2405:8100::/32",
	"2a06:98c0::/29", "2c0f:f248::/32",
}

// cloudflareRangesDate is when cloudflareRanges was taken: compared, that day, with a copy of
// the published lists dated 2024-06-25 (the live lists could not be fetched from where this
// was written; refresh them from cloudflare.com/ips when next editing).
const cloudflareRangesDate = "2026-12-04"

// privateRanges are RFC 1918, IPv6 unique local addresses (RFC 4193) and loopback: a balancer
// on the same private network or host.
var privateRanges = []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7", "127.0.0.0/8", "::1/128"}

// ParseTrustedProxies reads a trusted-proxies list: IP addresses, CIDRs, and the presets
// "cloudflare" and "private". An empty list trusts nobody.
func ParseTrustedProxies(list []string) (*TrustedProxies, error) {
	t := &TrustedProxies{}
	for _, raw := range list {
		v := strings.TrimSpace(raw)
		var ranges []string
		switch strings.ToLower(v) {
		case "":
			continue
		case "cloudflare":
			ranges = cloudflareRanges
		case "private":
			ranges = privateRanges
		default:
			ranges = []string{v}
		}
		for _, r := range ranges {
			p, err := parsePrefix(r)
			if err != nil {
				return nil, fmt.Errorf("trusted_proxies: invalid value %q: want an IP address, a CIDR such as 10.0.0.0/8, cloudflare or private", raw)
			}
			t.prefixes = append(t.prefixes, p)
		}
	}
	return t, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Contains reports whether ip is a trusted proxy. A nil list trusts nobody.
func (t *TrustedProxies) Contains(ip netip.Addr) bool {
	if t == nil || !ip.IsValid() {
		return false
	}
	ip = ip.Unmap()
	for _, p := range t.prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Empty reports a list that trusts nobody.
func (t *TrustedProxies) Empty() bool { return t == nil || len(t.prefixes) == 0 }

// Client is who a request is from once trusted proxies are accounted for.
type Client struct {
	// Addr is the visitor's address: the peer's, or what a trusted peer said.
	Addr netip.Addr
	// Peer is the TCP peer (the PROXY protocol's source address on a listener that speaks it).
	Peer netip.Addr
	// Trusted is set when Peer is a trusted proxy and its forwarding headers were believed.
	Trusted bool
	// HTTPS: the visitor's connection was TLS, here or at a trusted balancer.
	HTTPS bool
	// Port and Host are a trusted peer's X-Forwarded-Port and X-Forwarded-Host, "" when absent.
	Port, Host string
	// Chain is the X-Forwarded-For a trusted peer sent, passed on with the peer appended.
	Chain string
}

// ClientIPKey is the RequestCtx user value under which ResolveClient leaves the visitor's
// address (a netip.Addr) when trusted proxies are configured. cmd/frontdoor's router resolves
// every request first, so the Pusher side can read it with ctx.UserValue(proxy.ClientIPKey)
// (or call ClientIP) without depending on this package's rules.
const ClientIPKey = "frontdoor.client_ip"

const clientKey = "frontdoor.client"

// maxForwardedHops bounds the X-Forwarded-For entries walked.
const maxForwardedHops = 64

// ResolveClient works out the visitor from the peer and, when the peer is trusted, its
// forwarding headers; the result is kept on ctx, so later calls are free. Without trusted
// proxies nothing is kept and the peer is the client.
func (h *Handler) ResolveClient(ctx *fasthttp.RequestCtx) Client {
	if v, ok := ctx.UserValue(clientKey).(*Client); ok {
		return *v
	}
	peer := peerAddr(ctx)
	c := Client{Addr: peer, Peer: peer, HTTPS: ctx.IsTLS()}
	if h.trusted.Empty() {
		return c
	}
	kept := new(Client) // only here: without trusted proxies nothing is allocated
	*kept = c
	if h.trusted.Contains(peer) {
		h.believe(ctx, kept)
	}
	ctx.SetUserValue(clientKey, kept)
	ctx.SetUserValue(ClientIPKey, kept.Addr)
	return *kept
}

// ClientIP is the visitor's address as ResolveClient found it, else the TCP peer's.
func ClientIP(ctx *fasthttp.RequestCtx) netip.Addr {
	if a, ok := ctx.UserValue(ClientIPKey).(netip.Addr); ok {
		return a
	}
	return peerAddr(ctx)
}

func peerAddr(ctx *fasthttp.RequestCtx) netip.Addr {
	if ta, ok := ctx.RemoteAddr().(*net.TCPAddr); ok {
		if a, ok := netip.AddrFromSlice(ta.IP); ok {
			return a.Unmap()
		}
	}
	a, _ := netip.AddrFromSlice(ctx.RemoteIP())
	return a.Unmap()
}

// believe reads a trusted peer's forwarding headers into c.
func (h *Handler) believe(ctx *fasthttp.RequestCtx, c *Client) {
	c.Trusted = true
	hdr := &ctx.Request.Header
	if xff := hdr.PeekAll("X-Forwarded-For"); len(xff) > 0 {
		chain := string(bytes.Join(xff, []byte(", ")))
		c.Addr = walkForwardedFor(chain, c.Peer, h.trusted)
		if len(chain) <= maxForwardedChain {
			c.Chain = chain
		} else if c.Addr != c.Peer {
			c.Chain = c.Addr.String() // too long to pass on: the client alone
		}
	} else if a, ok := parseForwardedAddr(string(hdr.Peek("CF-Connecting-IP"))); ok {
		c.Addr = a
	}
	if p := lastValue(hdr.Peek("X-Forwarded-Proto")); p != "" {
		switch {
		case strings.EqualFold(p, "https"):
			c.HTTPS = true
		case strings.EqualFold(p, "http"):
			c.HTTPS = false
		}
	}
	if p := lastValue(hdr.Peek("X-Forwarded-Port")); p != "" {
		if n, err := strconv.Atoi(p); err == nil && n > 0 && n < 65536 && p[0] != '0' && p[0] != '+' {
			c.Port = p
		}
	}
	if host := lastValue(hdr.Peek("X-Forwarded-Host")); host != "" && validHost(host) {
		// A balancer that passes the client's own X-Forwarded-Host on (AWS ALB does) would let
		// it name any host: one of the configured names only, when there are some.
		if len(h.hosts) == 0 || h.cfg.AllowAnyHost || h.isHost(hostName(host)) {
			c.Host = host
		}
	}
}

// maxForwardedChain is the longest X-Forwarded-For passed on to an HTTP upstream.
const maxForwardedChain = 2048

// walkForwardedFor returns the client an X-Forwarded-For chain names, reached from peer (a
// trusted proxy): walking right to left, the first address that is not trusted. When every hop
// is trusted, the leftmost; an entry that is not an address ends the walk at the hop after it
// (everything from there leftwards is unverifiable).
func walkForwardedFor(chain string, peer netip.Addr, trusted *TrustedProxies) netip.Addr {
	client := peer
	for i := 0; i < maxForwardedHops && chain != ""; i++ {
		var entry string
		if j := strings.LastIndexByte(chain, ','); j >= 0 {
			chain, entry = chain[:j], chain[j+1:]
		} else {
			chain, entry = "", chain
		}
		a, ok := parseForwardedAddr(entry)
		if !ok {
			return client
		}
		client = a
		if !trusted.Contains(a) {
			return a
		}
	}
	return client
}

// parseForwardedAddr reads one X-Forwarded-For entry: an address, or one with a port as some
// balancers (Azure) write it: 203.0.113.7:51234, [2001:db8::1]:51234.
func parseForwardedAddr(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil && ap.Addr().Zone() == "" {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

// lastValue is the rightmost element of a comma list: the one the nearest proxy wrote.
func lastValue(v []byte) string {
	if i := bytes.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	return string(bytes.TrimSpace(v))
}

// validHost accepts host[:port] made of the characters a host name or address literal uses.
func validHost(s string) bool {
	if len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == ':' || c == '[' || c == ']') {
			return false
		}
	}
	return true
}
