package proxy

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

func TestParseTrustedProxies(t *testing.T) {
	tp, err := ParseTrustedProxies([]string{"cloudflare", " private ", "203.0.113.9", "2001:db8::/32"})
	if err != nil {
		t.Fatal(err)
	}
	for ip, want := range map[string]bool{
		"173.245.48.1": true, "2606:4700::1": true, // cloudflare
		"10.1.2.3": true, "172.31.255.255": true, "192.168.1.1": true, "127.0.0.1": true, "::1": true, "fd00::1": true,
		"203.0.113.9": true, "::ffff:203.0.113.9": true, "2001:db8:1::1": true,
		"203.0.113.10": false, "172.32.0.1": false, "8.8.8.8": false, "2001:db9::1": false,
	} {
		if got := tp.Contains(netip.MustParseAddr(ip)); got != want {
			t.Errorf("%s: %v, want %v", ip, got, want)
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "cloudfare", "10.0.0.1/x", "example.com"} {
		if _, err := ParseTrustedProxies([]string{bad}); err == nil || !strings.Contains(err.Error(), "trusted_proxies") || !strings.Contains(err.Error(), bad) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	var none *TrustedProxies
	if none.Contains(netip.MustParseAddr("127.0.0.1")) || !none.Empty() {
		t.Error("a nil list trusts")
	}
	if cloudflareRangesDate == "" || len(cloudflareRanges) < 20 {
		t.Error("the cloudflare preset is empty or undated")
	}
}

// TestWalkForwardedFor: right to left, the first address that is not a trusted proxy is the
// client; forged entries left of it are never reached.
func TestWalkForwardedFor(t *testing.T) {
	tp, _ := ParseTrustedProxies([]string{"10.0.0.0/8", "173.245.48.0/20"})
	peer := netip.MustParseAddr("10.0.0.1")
	for _, tc := range []struct{ chain, want string }{
		{"203.0.113.7", "203.0.113.7"},
		{"6.6.6.6, 203.0.113.7", "203.0.113.7"},               // the forged 6.6.6.6 is left of the client
		{"6.6.6.6, 203.0.113.7, 173.245.48.5", "203.0.113.7"}, // through a trusted CDN hop
		{"203.0.113.7,10.0.0.9,10.0.0.8", "203.0.113.7"},
		{"10.0.0.9, 10.0.0.8", "10.0.0.9"}, // all trusted: the leftmost
		{"6.6.6.6, garbage, 10.0.0.8", "10.0.0.8"},
		{"garbage", "10.0.0.1"},
		{"", "10.0.0.1"},
		{" , ", "10.0.0.1"},
		{"203.0.113.7:51234", "203.0.113.7"},
		{"[2001:db8::7]:443, 10.0.0.2", "2001:db8::7"},
		{"::ffff:203.0.113.7", "203.0.113.7"},
		{"fe80::1%eth0", "10.0.0.1"},
	} {
		if got := walkForwardedFor(tc.chain, peer, tp).String(); got != tc.want {
			t.Errorf("%q: %s, want %s", tc.chain, got, tc.want)
		}
	}
}

func FuzzWalkForwardedFor(f *testing.F) {
	for _, s := range []string{"203.0.113.7, 10.0.0.2", "[::1]:80,::1", ",,,", "1.2.3.4:99999", "10.0.0.1, x, 10.0.0.2"} {
		f.Add(s)
	}
	tp, _ := ParseTrustedProxies([]string{"private"})
	peer := netip.MustParseAddr("127.0.0.1")
	f.Fuzz(func(t *testing.T, chain string) {
		got := walkForwardedFor(chain, peer, tp)
		if !got.IsValid() {
			t.Fatalf("%q: invalid address", chain)
		}
		if got != peer && !strings.Contains(chain, strings.TrimPrefix(got.String(), "::ffff:")) {
			// Every result is the peer or parsed from the chain (the text may differ in form).
			if _, ok := parseForwardedAddr(got.String()); !ok {
				t.Fatalf("%q: %s from nowhere", chain, got)
			}
		}
	})
}

// forwarded are the forwarding headers a balancer (or a client pretending to be one) sends.
var forwarded = map[string]string{
	"X-Forwarded-For":   "6.6.6.6, 203.0.113.7, 10.0.0.2",
	"X-Forwarded-Proto": "https",
	"X-Forwarded-Port":  "443",
	"X-Forwarded-Host":  "app.example.com",
	"CF-Connecting-IP":  "9.9.9.9",
}

// TestTrustedProxiesWithPHPFPM: over a real php-fpm, a client that is not a trusted proxy
// cannot change REMOTE_ADDR, HTTPS or the host with forwarding headers; a trusted peer (the
// test connects from 127.0.0.1, in "private") can, by the rightmost-untrusted rule, and the
// headers themselves never reach PHP either way.
func TestTrustedProxiesWithPHPFPM(t *testing.T) {
	fpm := startPHPFPM(t, 2)
	for _, tc := range []struct {
		name    string
		trusted []string
		hdr     map[string]string
		want    map[string]string
	}{
		{"untrusted peer", []string{"10.0.0.0/8"}, forwarded,
			map[string]string{"REMOTE_ADDR": "127.0.0.1", "HTTPS": "", "REQUEST_SCHEME": "http", "HTTP_HOST": "app.example.com"}},
		{"trusted peer", []string{"private"}, forwarded,
			map[string]string{"REMOTE_ADDR": "203.0.113.7", "HTTPS": "on", "REQUEST_SCHEME": "https", "SERVER_PORT": "443", "HTTP_HOST": "app.example.com"}},
		{"trusted peer, host not configured", []string{"private"}, map[string]string{"X-Forwarded-Host": "evil.example", "X-Forwarded-For": "203.0.113.7"},
			map[string]string{"REMOTE_ADDR": "203.0.113.7", "HTTP_HOST": "app.example.com", "HTTPS": ""}},
		{"CF-Connecting-IP without X-Forwarded-For", []string{"private"}, map[string]string{"CF-Connecting-IP": "9.9.9.9", "X-Forwarded-Proto": "http"},
			map[string]string{"REMOTE_ADDR": "9.9.9.9", "HTTPS": ""}},
		{"garbage from a trusted peer", []string{"private"}, map[string]string{"X-Forwarded-For": "<script>", "X-Forwarded-Port": "99999", "X-Forwarded-Proto": "gopher"},
			map[string]string{"REMOTE_ADDR": "127.0.0.1", "HTTPS": ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := &lockedBuffer{}
			h, err := New(Config{Root: root(t), Upstreams: []string{fpm.unixURL()}, TrustedProxies: tc.trusted,
				Hosts: []string{"app.example.com"}, AccessLog: true}, zerolog.New(logs))
			if err != nil {
				t.Fatal(err)
			}
			front := serveFront(t, h)
			req := mustReq(t, "GET", front+"/whoami", nil)
			req.Host = "app.example.com"
			for k, v := range tc.hdr {
				req.Header.Set(k, v)
			}
			resp, b := do(t, req)
			s := decodeSaw(t, resp, b)
			for k, v := range tc.want {
				if s.Server[k] != v {
					t.Errorf("%s = %q, want %q", k, s.Server[k], v)
				}
			}
			for k := range forwarded {
				if v, ok := s.Server[cgiName([]byte(k))]; ok {
					t.Errorf("%s = %q reached PHP", cgiName([]byte(k)), v)
				}
			}
			if want := `"remote":"` + tc.want["REMOTE_ADDR"] + `"`; !strings.Contains(logs.String(), want) {
				t.Errorf("access log without %s:\n%s", want, logs)
			}
		})
	}
}

// TestTrustedProxiesForHTTPUpstream: an HTTP upstream gets the chain a trusted balancer sent
// with the balancer appended, X-Real-IP the client it names; from an untrusted peer, the peer
// alone.
func TestTrustedProxiesForHTTPUpstream(t *testing.T) {
	got := make(chan http.Header, 1)
	up := startGoUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
		_ = json.NewEncoder(w).Encode(r.Header)
	}))
	for _, tc := range []struct {
		name                        string
		trusted                     []string
		xff, realIP, proto, cfFound string
	}{
		{"untrusted", []string{"10.0.0.0/8"}, "127.0.0.1", "127.0.0.1", "http", ""},
		{"trusted", []string{"private"}, "6.6.6.6, 203.0.113.7, 10.0.0.2, 127.0.0.1", "203.0.113.7", "https", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := New(Config{Upstreams: []string{up}, TrustedProxies: tc.trusted}, zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			front := serveFront(t, h)
			req := mustReq(t, "GET", front+"/whoami", nil)
			for k, v := range forwarded {
				req.Header.Set(k, v)
			}
			do(t, req)
			hdr := <-got
			if hdr.Get("X-Forwarded-For") != tc.xff || hdr.Get("X-Real-IP") != tc.realIP || hdr.Get("X-Forwarded-Proto") != tc.proto ||
				hdr.Get("Cf-Connecting-Ip") != "" {
				t.Fatalf("X-Forwarded-For %q X-Real-IP %q X-Forwarded-Proto %q CF-Connecting-IP %q", hdr.Get("X-Forwarded-For"),
					hdr.Get("X-Real-IP"), hdr.Get("X-Forwarded-Proto"), hdr.Get("Cf-Connecting-Ip"))
			}
		})
	}
}
