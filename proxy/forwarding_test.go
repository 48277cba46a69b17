package proxy

import (
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// spoofedForwarding are forwarding headers a client might send to pass for another address,
// scheme, host or path.
var spoofedForwarding = map[string]string{
	"X-Forwarded-For":    "10.0.0.9",
	"X-Forwarded-Proto":  "https",
	"X-Forwarded-Host":   "evil.example",
	"X-Forwarded-Port":   "8443",
	"X-Forwarded-Prefix": "/evil",
	"X-Forwarded-Ssl":    "on",
	"x-forwarded-server": "evil",
	"Forwarded":          "for=10.0.0.9;proto=https",
	"X-Real-IP":          "10.0.0.9",
	"X-Original-URL":     "/admin",
	"X-Rewrite-URL":      "/admin",
	"Client-IP":          "10.0.0.9",
	"CF-Connecting-IP":   "10.0.0.9",
	"True-Client-IP":     "10.0.0.9",
}

// TestClientForwardingHeadersNeverReachPHP: over FastCGI, none of the client's forwarding
// headers becomes an HTTP_* variable (Laravel's TrustProxies would read them), while other
// headers pass.
func TestClientForwardingHeadersNeverReachPHP(t *testing.T) {
	fpm := startPHPFPM(t, 1)
	h, err := New(Config{Root: root(t), Upstreams: []string{fpm.unixURL()}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	front := serveFront(t, h)
	req := mustReq(t, "GET", front+"/whoami", nil)
	for k, v := range spoofedForwarding {
		req.Header[k] = []string{v}
	}
	req.Header.Set("X-Custom", "kept")
	resp, b := do(t, req)
	s := decodeSaw(t, resp, b)
	for k := range spoofedForwarding {
		if v, ok := s.Server[cgiName([]byte(k))]; ok {
			t.Errorf("%s = %q reached PHP", cgiName([]byte(k)), v)
		}
	}
	if s.Server["HTTP_X_CUSTOM"] != "kept" || s.Server["REMOTE_ADDR"] != "127.0.0.1" || s.Server["REQUEST_URI"] != "/whoami" {
		t.Errorf("X-Custom %q REMOTE_ADDR %q REQUEST_URI %q", s.Server["HTTP_X_CUSTOM"], s.Server["REMOTE_ADDR"], s.Server["REQUEST_URI"])
	}
}

// TestClientForwardingHeadersReplacedForHTTPUpstream: an HTTP upstream gets frontdoor's own
// X-Forwarded-For/-Proto/-Host/-Port and X-Real-IP, and none of the client's other forwarding
// headers (X-Forwarded-Prefix, X-Original-URL, Client-IP…).
func TestClientForwardingHeadersReplacedForHTTPUpstream(t *testing.T) {
	got := make(chan http.Header, 1)
	up := startGoUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
		_ = json.NewEncoder(w).Encode(r.Header)
	}))
	h, err := New(Config{Upstreams: []string{up}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	front := serveFront(t, h)
	u, _ := url.Parse(front)
	_, port, _ := net.SplitHostPort(u.Host)
	req := mustReq(t, "GET", front+"/whoami", nil)
	req.Host = "shop.test"
	for k, v := range spoofedForwarding {
		req.Header[k] = []string{v}
	}
	req.Header.Set("X-Custom", "kept")
	if resp, b := do(t, req); resp.StatusCode != 200 {
		t.Fatalf("%d %q", resp.StatusCode, b)
	}
	hdr := <-got
	want := map[string]string{"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "http", "X-Forwarded-Host": "shop.test",
		"X-Forwarded-Port": port, "X-Real-Ip": "127.0.0.1", "X-Custom": "kept"}
	for k, v := range want {
		if got := hdr.Values(k); len(got) != 1 || got[0] != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	for k := range hdr {
		if _, ok := want[http.CanonicalHeaderKey(k)]; ok {
			continue
		}
		if _, spoofed := spoofedForwarding[k]; spoofed || strings.HasPrefix(http.CanonicalHeaderKey(k), "X-Forwarded-") {
			t.Errorf("%s: %q reached the upstream", k, hdr[k])
		}
		for s := range spoofedForwarding {
			if strings.EqualFold(s, k) {
				t.Errorf("%s: %q reached the upstream", k, hdr[k])
			}
		}
	}
}

func TestClientForwardingNames(t *testing.T) {
	for _, c := range []struct {
		name string
		want bool
	}{
		{"X-Forwarded-For", true}, {"x-forwarded-prefix", true}, {"X-FORWARDED-ANYTHING", true},
		{"Forwarded", true}, {"x-real-ip", true}, {"X-Original-URL", true}, {"X-Rewrite-Url", true},
		{"Client-IP", true}, {"cf-connecting-ip", true}, {"True-Client-IP", true},
		{"X-Forwarded-", false}, {"X-Forwarded", false}, {"X-Forwardedfor", false}, {"Forwarded-For", false},
		{"X-Custom", false}, {"Accept", false}, {"X-Request-Id", false},
	} {
		if got := clientForwarding([]byte(c.name)); got != c.want {
			t.Errorf("clientForwarding(%q) = %v, want %v", c.name, got, c.want)
		}
	}
}
