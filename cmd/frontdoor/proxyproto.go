package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/frontdoorhq/frontdoor/proxy"
)

// PROXY protocol (v1 text and v2 binary, HAProxy's spec) on the listeners that sit behind a TCP
// balancer: AWS NLB, HAProxy, Hetzner and DigitalOcean load balancers. The balancer opens each
// connection with a header naming the visitor's address; frontdoor then sees that address as
// the peer, for the trusted-proxies rules, PHP's REMOTE_ADDR, logs and the Pusher side alike.

// proxyProtocolListeners are the names --proxy-protocol accepts.
var proxyProtocolListeners = []string{"https", "http", "plain"}

// proxyHeaderTimeout bounds the wait for a connection's PROXY header. It is read by the
// connection's serving goroutine on its first read, never by the accept loop.
const proxyHeaderTimeout = 5 * time.Second

// speaksProxyProtocol reports whether the listener name expects PROXY headers.
func (s *settings) speaksProxyProtocol(name string) bool {
	return slices.Contains(s.ProxyProtocol, name) || slices.Contains(s.ProxyProtocol, "all") || slices.Contains(s.ProxyProtocol, "true")
}

// validateProxyProtocol checks --proxy-protocol: known listener names ("true" is all of them,
// "false" none), and trusted proxies to accept the headers from (a header from anyone would
// let anyone name any address).
func (s *settings) validateProxyProtocol() error {
	s.ProxyProtocol = slices.DeleteFunc(s.ProxyProtocol, func(n string) bool { return n == "false" || n == "" })
	for _, n := range s.ProxyProtocol {
		if n != "all" && n != "true" && !slices.Contains(proxyProtocolListeners, n) {
			return badValue("proxy-protocol", n, "want listener names: https, http, plain, or all (true)")
		}
	}
	if len(s.ProxyProtocol) > 0 && len(s.Proxy.TrustedProxies) == 0 {
		return fmt.Errorf("proxy-protocol: set --trusted-proxies to the balancer's addresses (e.g. private): PROXY headers are accepted from them only")
	}
	return nil
}

// proxyProtocol wraps ln, after GuardAccept, when the listener expects PROXY headers. A
// connection from a peer that is not a trusted proxy is closed at accept; one from a trusted
// peer must start with a valid header, else its first read fails and fasthttp closes it
// without an answer. go-proxyproto's ReadHeaderTimeout bounds a slow header.
func (srv *server) proxyProtocol(name string, ln net.Listener) net.Listener {
	if !srv.settings.speaksProxyProtocol(name) {
		return ln
	}
	trusted, _ := proxy.ParseTrustedProxies(srv.settings.Proxy.TrustedProxies) // validated
	return &proxyproto.Listener{
		Listener:          ln,
		ReadHeaderTimeout: proxyHeaderTimeout,
		ConnPolicy: func(o proxyproto.ConnPolicyOptions) (proxyproto.Policy, error) {
			var peer netip.Addr
			if ta, ok := o.Upstream.(*net.TCPAddr); ok {
				peer, _ = netip.AddrFromSlice(ta.IP)
			}
			if trusted.Contains(peer) {
				return proxyproto.REQUIRE, nil
			}
			srv.metrics.refusedRequest("proxy_protocol_untrusted")
			if quiet, ok := srv.malformedLogs.Allow(); ok {
				srv.log.Info().Str("listener", name).Str("remote", peer.String()).Uint64("suppressed", quiet).
					Msg("refused a connection on a PROXY protocol listener: the peer is not in --trusted-proxies")
			}
			return proxyproto.REJECT, proxyproto.ErrInvalidUpstream // closed; Accept goes on
		},
	}
}

// proxyHeaderErrors are go-proxyproto's answers to a missing or malformed header.
var proxyHeaderErrors = []error{proxyproto.ErrNoProxyProtocol, proxyproto.ErrCantReadVersion1Header,
	proxyproto.ErrVersion1HeaderTooLong, proxyproto.ErrLineMustEndWithCrlf, proxyproto.ErrCantReadProtocolVersionAndCommand,
	proxyproto.ErrCantReadAddressFamilyAndProtocol, proxyproto.ErrCantReadLength, proxyproto.ErrUnknownProxyProtocolVersion,
	proxyproto.ErrUnsupportedProtocolVersionAndCommand, proxyproto.ErrUnsupportedAddressFamilyAndProtocol,
	proxyproto.ErrInvalidLength, proxyproto.ErrInvalidAddress, proxyproto.ErrInvalidPortNumber,
	proxyproto.ErrTruncatedTLV, proxyproto.ErrMalformedTLV}

// badProxyHeader reports a connection refused for its PROXY header (refuseMalformed counts it;
// nothing can be written back, the connection is unusable).
func badProxyHeader(err error) bool {
	for _, e := range proxyHeaderErrors {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
