package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/rs/zerolog"
)

// runServer starts a server in-process from these serve arguments and stops it when the test ends.
func runServer(t *testing.T, args ...string) *server {
	t.Helper()
	s, err := load(t, args, env())
	if err != nil {
		t.Fatal(err)
	}
	return serveSettings(t, s, zerolog.Nop())
}

// serveSettings starts a server from s, waits until it is ready and stops it when the test ends.
func serveSettings(t *testing.T, s settings, log zerolog.Logger) *server {
	t.Helper()
	srv, err := newServer(s, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(10 * time.Second)
	for !srv.ready.Load() {
		if time.Now().After(deadline) {
			t.Fatal("server not ready")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return srv
}

// hostGet sends GET path to addr (https when secure) with the given Host and returns status,
// Location and body.
func hostGet(t *testing.T, secure bool, addr, host, path string) (int, string, string) {
	t.Helper()
	scheme := "http"
	if secure {
		scheme = "https"
	}
	req, err := http.NewRequest("GET", scheme+"://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	c := &http.Client{
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: "app.example.com"}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       30 * time.Second,
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(b)
}

// TestHostCheckedOnPublicListeners: with --domain, a request for another Host is refused with
// 421 on the TLS listener (PHP, the Pusher socket and the Pusher API alike) and on :80, which
// redirects configured names only; the loopback --listen beside TLS (the broadcaster's) is not
// checked; --allow-any-host turns the check off.
func TestHostCheckedOnPublicListeners(t *testing.T) {
	upstream, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	php := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "php saw %s", r.Host)
	})}
	go php.Serve(upstream)
	t.Cleanup(func() { php.Close() })

	httpsAddr, httpAddr, plainAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	args := []string{"--env-file", "", "--admin", "off", "--tls", "self-signed", "--domain", "app.example.com",
		"--https-addr", httpsAddr, "--http-addr", httpAddr, "--listen", plainAddr,
		"--upstream", "http://" + upstream.Addr().String(), "--app-id", "1", "--app-key", "key1", "--app-secret", "secret1"}
	runServer(t, args...)
	_, httpsPort, _ := net.SplitHostPort(httpsAddr)

	if st, _, b := hostGet(t, true, httpsAddr, "app.example.com", "/"); st != 200 || b != "php saw app.example.com" {
		t.Errorf("configured name over TLS: %d %q", st, b)
	}
	if st, _, b := hostGet(t, true, httpsAddr, "APP.example.com:"+httpsPort, "/"); st != 200 {
		t.Errorf("configured name with a port: %d %q", st, b)
	}
	for _, path := range []string{"/", "/apps/1/channels", "/app/key1"} {
		if st, _, b := hostGet(t, true, httpsAddr, "attacker.example", path); st != 421 || strings.Contains(b, "php saw") {
			t.Errorf("other Host over TLS, %s: %d %q", path, st, b)
		}
	}
	if st, loc, _ := hostGet(t, false, httpAddr, "app.example.com", "/x?y=1"); st != 308 || loc != "https://app.example.com:"+httpsPort+"/x?y=1" {
		t.Errorf(":80 for the configured name: %d %q", st, loc)
	}
	if st, loc, _ := hostGet(t, false, httpAddr, "attacker.example", "/x"); st != 421 || loc != "" {
		t.Errorf(":80 for another name: %d, Location %q", st, loc)
	}
	if st, _, b := hostGet(t, false, plainAddr, plainAddr, "/"); st != 200 || b != "php saw "+plainAddr {
		t.Errorf("loopback --listen: %d %q", st, b)
	}

	// The Pusher socket: refused at the handshake for another Host, accepted for the domain.
	d := websocket.Dialer{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: "app.example.com"}, HandshakeTimeout: 10 * time.Second}
	url := "wss://" + httpsAddr + "/app/key1?protocol=7&client=go&version=1"
	if c, resp, err := d.Dial(url, http.Header{"Host": {"attacker.example"}}); err == nil || resp == nil || resp.StatusCode != 421 {
		if c != nil {
			c.Close()
		}
		t.Errorf("socket for another Host: %v %v", resp, err)
	}
	c, _, err := d.Dial(url, http.Header{"Host": {"app.example.com"}})
	if err != nil {
		t.Fatalf("socket for the domain: %v", err)
	}
	c.Close()

	// --allow-any-host: a catch-all site.
	httpsAddr2 := freeAddr(t)
	args = append(args[:0:0], args...)
	for i, a := range args {
		switch a {
		case "--https-addr":
			args[i+1] = httpsAddr2
		case "--http-addr":
			args[i+1] = freeAddr(t)
		case "--listen":
			args[i+1] = freeAddr(t)
		}
	}
	runServer(t, append(args, "--allow-any-host")...)
	if st, _, b := hostGet(t, true, httpsAddr2, "attacker.example", "/"); st != 200 || b != "php saw attacker.example" {
		t.Errorf("--allow-any-host: %d %q", st, b)
	}
}

func TestAllowAnyHostSetting(t *testing.T) {
	for _, c := range []struct {
		args []string
		env  []string
		yaml string
	}{
		{args: []string{"--allow-any-host"}},
		{env: []string{"FRONTDOOR_ALLOW_ANY_HOST", "true"}},
		{yaml: "proxy:\n  allow_any_host: true\n"},
	} {
		args := append([]string{"--env-file", ""}, c.args...)
		if c.yaml != "" {
			args = append(args, "--config", writeFile(t, "frontdoor.yaml", c.yaml))
		}
		s, err := load(t, args, env(c.env...))
		if err != nil || !s.Proxy.AllowAnyHost {
			t.Errorf("%v %v %q: %v, %v", c.args, c.env, c.yaml, s.Proxy.AllowAnyHost, err)
		}
	}
}
