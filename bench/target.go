package bench

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Target names the server under test and the app the bench uses on it. Every field can come
// from flags or from a Laravel .env (LoadEnv), so the same command measures Reverb, Soketi and
// frontdoor.
type Target struct {
	// URL is the WebSocket base: ws://host:port or wss://host:port, optionally with the mount
	// prefix (REVERB_SERVER_PATH) as its path. Required.
	URL string
	// AppID, Key, Secret are the Pusher app credentials (REVERB_APP_ID/KEY/SECRET). Required.
	AppID, Key, Secret string
	// HTTPURL is the base for the proxy scenario (default: URL with http/https).
	HTTPURL string
	// ServerPIDs are sampled for RSS and CPU from /proc (optional; none = no server figures).
	ServerPIDs []int
	// Insecure skips TLS certificate verification for wss:// and https:// targets.
	Insecure bool
	// Label names the server in reports (default: the URL's host:port).
	Label string
	// Nodes are other nodes of the same cluster (ws:// or wss:// like URL): WebSocket clients
	// are spread round-robin over URL and Nodes, API calls go to URL, so a fan-out published on
	// one node is delivered through the others.
	Nodes []string
}

func validWSURL(flag, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%s: %q: %v", flag, raw, err)
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return fmt.Errorf("%s: %q: scheme must be ws or wss", flag, raw)
	}
	if u.Host == "" {
		return fmt.Errorf("%s: %q: no host", flag, raw)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%s: %q: no query or fragment expected (the bench builds /app/{key} itself)", flag, raw)
	}
	return nil
}

// Validate checks the target and names the bad key.
func (t *Target) Validate() error {
	if t.URL == "" {
		return errors.New("url: required (e.g. ws://127.0.0.1:8080), or --env-file with REVERB_HOST/PORT/SCHEME")
	}
	if err := validWSURL("url", t.URL); err != nil {
		return err
	}
	for _, n := range t.Nodes {
		if err := validWSURL("node", n); err != nil {
			return err
		}
	}
	for k, v := range map[string]string{"app-id": t.AppID, "key": t.Key, "secret": t.Secret} {
		if v == "" {
			return fmt.Errorf("%s: required (or REVERB_APP_%s in --env-file)", k, strings.ToUpper(strings.TrimPrefix(k, "app-")))
		}
	}
	if strings.ContainsAny(t.AppID, "/?#") {
		return fmt.Errorf("app-id: %q: must not contain / ? #", t.AppID)
	}
	if t.HTTPURL != "" {
		h, err := url.Parse(t.HTTPURL)
		if err != nil || (h.Scheme != "http" && h.Scheme != "https") || h.Host == "" {
			return fmt.Errorf("http-url: %q: want http://host:port or https://host:port", t.HTTPURL)
		}
	}
	for _, pid := range t.ServerPIDs {
		if pid <= 0 {
			return fmt.Errorf("server-pid: %d: not a process id", pid)
		}
	}
	return nil
}

// endpoint is a validated Target split into what the clients need.
type endpoint struct {
	tls      bool
	host     string // host:port, port always present
	hostname string
	prefix   string   // mount prefix without trailing slash, "" or "/ws"
	wsURL    string   // full URL of /app/{key} with the protocol query
	wsURLs   []string // wsURL and the same on every --node: clients take them in turn
	httpBase string   // scheme://host:port for the API
	proxyURL *url.URL
	signer   signer
	loopback bool
}

func (t *Target) endpoint() (*endpoint, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	u, _ := url.Parse(t.URL)
	e := &endpoint{tls: u.Scheme == "wss", hostname: u.Hostname(), prefix: strings.TrimSuffix(u.Path, "/")}
	port := u.Port()
	if port == "" {
		port = "80"
		if e.tls {
			port = "443"
		}
	}
	e.host = net.JoinHostPort(e.hostname, port)
	httpScheme := "http"
	if e.tls {
		httpScheme = "https"
	}
	e.httpBase = httpScheme + "://" + e.host
	e.wsURL = appURL(u, t.Key)
	e.wsURLs = []string{e.wsURL}
	for _, n := range t.Nodes {
		nu, _ := url.Parse(n)
		e.wsURLs = append(e.wsURLs, appURL(nu, t.Key))
	}
	e.signer = signer{appID: t.AppID, key: t.Key, secret: t.Secret}
	proxy := t.HTTPURL
	if proxy == "" {
		proxy = e.httpBase
	}
	e.proxyURL, _ = url.Parse(proxy)
	if ip := net.ParseIP(e.hostname); ip != nil {
		e.loopback = ip.IsLoopback()
	} else {
		e.loopback = e.hostname == "localhost"
	}
	return e, nil
}

func (e *endpoint) port() int {
	_, p, _ := net.SplitHostPort(e.host)
	n, _ := strconv.Atoi(p)
	return n
}

// LoadEnv fills empty fields of t from a Laravel .env's REVERB_* variables, the way Laravel's
// broadcasting config reads them: REVERB_APP_ID/KEY/SECRET and, for the URL,
// REVERB_SCHEME (https → wss), REVERB_HOST, REVERB_PORT and REVERB_SERVER_PATH.
func (t *Target) LoadEnv(vars map[string]string) {
	fill := func(dst *string, key string) {
		if *dst == "" {
			*dst = vars[key]
		}
	}
	fill(&t.AppID, "REVERB_APP_ID")
	fill(&t.Key, "REVERB_APP_KEY")
	fill(&t.Secret, "REVERB_APP_SECRET")
	if t.URL == "" && vars["REVERB_HOST"] != "" {
		scheme := "ws"
		if vars["REVERB_SCHEME"] == "https" {
			scheme = "wss"
		}
		host := vars["REVERB_HOST"]
		if p := vars["REVERB_PORT"]; p != "" {
			host = net.JoinHostPort(host, p)
		}
		t.URL = scheme + "://" + host + strings.TrimSuffix(vars["REVERB_SERVER_PATH"], "/")
	}
}

// appURL is a server's /app/{key} URL with the protocol query pusher-js sends (spec § 1.1).
func appURL(u *url.URL, key string) string {
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), map[bool]string{true: "443", false: "80"}[u.Scheme == "wss"])
	}
	return u.Scheme + "://" + host + strings.TrimSuffix(u.Path, "/") + "/app/" + url.PathEscape(key) +
		"?protocol=7&client=frontdoor-bench&version=1.0&flash=false"
}
