package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/frontdoorhq/frontdoor/proxy"
	"github.com/frontdoorhq/frontdoor/pusher"
	redisbroker "github.com/frontdoorhq/frontdoor/pusher/redis"
	fdtls "github.com/frontdoorhq/frontdoor/tls"

	"github.com/frontdoorhq/frontdoor/cmd/frontdoor/internal/workers"
)

// settings is everything `serve` runs with. It is assembled in one place, in the order
// defaults < YAML --config < Laravel .env < FRONTDOOR_* < flags (docs/configuration.md), and then
// handed out to each package as that package's own Config.
type settings struct {
	Listen          string        // plain-HTTP listener; "" when TLS alone serves
	Admin           string        // admin listener for /healthz, /readyz, /metrics; "off" disables
	Pprof           bool          // /debug/pprof on the admin listener
	ShutdownTimeout time.Duration // how long in-flight HTTP requests may finish after SIGTERM
	LogLevel        string
	Debug           bool   // log level trace: every WebSocket frame and API call (reverb:start --debug)
	LogFormat       string // auto, json or console
	AccessLog       bool
	PidFile         string // written at start-up for `frontdoor restart`
	// ProxyProtocol names the listeners (https, http, plain, or all) that expect a PROXY
	// protocol header from a trusted balancer (proxyproto.go).
	ProxyProtocol []string

	Pusher pusher.Config
	Proxy  proxy.Config
	TLS    fdtls.Config
	// Redis joins this node to others when its URL is set (pusher/redis); empty is a single node.
	Redis redisbroker.Config
	// Workers are the app's own processes frontdoor supervises (queue:work, horizon).
	Workers []workers.Config

	// devCredentials is set when no app was configured and one was generated for this run.
	devCredentials bool
	// primary is the app id --app-id selected for --app-key and --app-secret.
	primary string
	// hstsChosen is set when the YAML file named tls.hsts (flags and env are asked directly).
	hstsChosen bool
	// appRoot is the Laravel project directory: the .env's, else --root's parent, else the
	// current one. Workers run there unless they name a directory.
	appRoot string
	// notices are things worth one log line at start-up (duplicate .env keys, ignored variables).
	notices []string
	// tlsSet maps each TLS-only setting the YAML, FRONTDOOR_* or a flag gave (by flag name, e.g.
	// "tls-cert") to where it came from, so one left with TLS off is an error, not ignored.
	tlsSet map[string]string
	// tlsModeSet is where the TLS mode was chosen explicitly; "" when it was left to inference.
	tlsModeSet string

	// Sites are the resolved `sites:` (sites.go); empty: one implicit site from the flags.
	Sites []siteSettings
	// siteFiles and sitesSource are the YAML's sites before resolution, and the file's path.
	siteFiles      []fileSite
	sitesSource    string
	onDemandLimits fileOnDemandLimits
	// hstsDefaulted: HSTS is the ACME default, not a chosen value, so sites without ACME send none.
	hstsDefaulted bool
}

// Defaults: a development server on loopback, one app, no TLS, PHP at http://127.0.0.1:8000.
func defaultSettings() settings {
	return settings{
		Listen:          "127.0.0.1:8080",
		Admin:           "127.0.0.1:9601",
		ShutdownTimeout: 10 * time.Second,
		LogLevel:        "info",
		LogFormat:       "auto",
		AccessLog:       true,
		Proxy: proxy.Config{
			MaxBody: 64 << 20,
		},
		TLS: fdtls.DefaultConfig(),
	}
}

// fileConfig is the YAML --config file. Pointers tell "absent" from "zero", so a file only
// overrides what it names.
type fileConfig struct {
	Listen          *string            `yaml:"listen"`
	PathPrefix      *string            `yaml:"path_prefix"`
	Admin           *string            `yaml:"admin"`
	Pprof           *bool              `yaml:"pprof"`
	ShutdownTimeout *time.Duration     `yaml:"shutdown_timeout"`
	MaxConnections  *int               `yaml:"max_connections"`
	MaxConnsPerIP   *int               `yaml:"max_connections_per_ip"`
	Log             *fileLog           `yaml:"log"`
	Apps            []pusher.AppConfig `yaml:"apps"`
	Proxy           *fileProxy         `yaml:"proxy"`
	TLS             *fileTLS           `yaml:"tls"`
	Redis           *fileRedis         `yaml:"redis"`
	Workers         []workers.Config   `yaml:"workers"`
	ProxyProtocol   []string           `yaml:"proxy_protocol"`
	// Sites are several Laravel apps on one server (sites.go); absent, the flags describe one.
	Sites []fileSite `yaml:"sites"`
}

type fileRedis struct {
	URL          *string        `yaml:"url"`
	Prefix       *string        `yaml:"prefix"`
	OutageQueue  *int           `yaml:"outage_queue"`
	OutageMaxAge *time.Duration `yaml:"outage_max_age"`
}

type fileLog struct {
	Level  *string `yaml:"level"`
	Debug  *bool   `yaml:"debug"`
	Format *string `yaml:"format"`
	Access *bool   `yaml:"access"`
}

type fileProxy struct {
	Root            *string        `yaml:"root"`
	FrontController *string        `yaml:"front_controller"`
	Upstreams       []string       `yaml:"upstreams"`
	MaxBody         *byteSize      `yaml:"max_body"`
	ConnectTimeout  *time.Duration `yaml:"connect_timeout"`
	ReadTimeout     *time.Duration `yaml:"read_timeout"`
	WriteTimeout    *time.Duration `yaml:"write_timeout"`
	// Request bodies and hosts (docs/configuration.md "Request bodies", "Host names").
	BodyTimeout         *time.Duration `yaml:"body_timeout"`
	BodyBufferLimit     *byteSize      `yaml:"body_buffer_limit"`
	StreamRequestBodies *bool          `yaml:"stream_request_bodies"`
	AllowAnyHost        *bool          `yaml:"allow_any_host"`
	SymlinkRoots        []string       `yaml:"symlink_roots"`
	// Pages (docs/configuration.md "Compression").
	TrustedProxies []string `yaml:"trusted_proxies"`
	SendfileRoots  []string `yaml:"sendfile_roots"`
	Compress       *bool    `yaml:"compress"`
	CompressLevel  *int     `yaml:"compress_level"`
	// Deploys (docs/configuration.md "Deploys and open tabs").
	BuildDir                  *string        `yaml:"build_dir"`
	PreviousReleases          *int           `yaml:"previous_releases"`
	PreviousReleasesWindow    *time.Duration `yaml:"previous_releases_window"`
	PreviousReleasesCopyLimit *byteSize      `yaml:"previous_releases_copy_limit"`
	// Reconnect storms (docs/configuration.md "Reconnect storms").
	AuthLaneShare    *float64       `yaml:"auth_lane_share"`
	AuthQueue        *int           `yaml:"auth_queue"`
	AuthQueueTimeout *time.Duration `yaml:"auth_queue_timeout"`
}

type fileTLS struct {
	Mode          *fdtls.Mode    `yaml:"mode"`
	Domains       []string       `yaml:"domains"`
	Email         *string        `yaml:"acme_email"`
	CacheDir      *string        `yaml:"cert_cache"`
	ACMEDirectory *string        `yaml:"acme_directory"`
	ACMECARoot    *string        `yaml:"acme_ca_root"`
	CertFile      *string        `yaml:"cert"`
	KeyFile       *string        `yaml:"key"`
	HTTPSAddr     *string        `yaml:"https_addr"`
	HTTPAddr      *string        `yaml:"http_addr"`
	HTTPRedirect  *bool          `yaml:"http_redirect"`
	HSTS          *time.Duration `yaml:"hsts"`
	HTTP2         *bool          `yaml:"http2"`
	// OnDemand bounds on-demand certificate orders across all sites (sites.go).
	OnDemand *fileOnDemandLimits `yaml:"on_demand"`
}

// applyYAML reads a --config file. Unknown keys are errors with their line, so a typo never
// silently falls back to a default.
func (s *settings) applyYAML(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	var fc fileConfig
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&fc); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: %w", path, err)
	}
	setIf(&s.Listen, fc.Listen)
	setIf(&s.Pusher.PathPrefix, fc.PathPrefix)
	setIf(&s.Admin, fc.Admin)
	setIf(&s.Pprof, fc.Pprof)
	setIf(&s.ShutdownTimeout, fc.ShutdownTimeout)
	setIf(&s.Pusher.MaxConnections, fc.MaxConnections)
	if n := fc.MaxConnsPerIP; n != nil {
		if *n < 0 {
			return fmt.Errorf("%s: max_connections_per_ip: invalid value %d: want a whole number ≥ 0 (0 = unlimited)", path, *n)
		}
		s.Pusher.MaxConnectionsPerIP = perIPSetting(*n)
	}
	if l := fc.Log; l != nil {
		setIf(&s.LogLevel, l.Level)
		setIf(&s.Debug, l.Debug)
		setIf(&s.LogFormat, l.Format)
		setIf(&s.AccessLog, l.Access)
	}
	if len(fc.Apps) > 0 {
		s.Pusher.Apps = fc.Apps
	}
	if fc.ProxyProtocol != nil {
		s.ProxyProtocol = fc.ProxyProtocol
	}
	if fc.Proxy != nil {
		if err := applyFileProxy(&s.Proxy, fc.Proxy, path); err != nil {
			return err
		}
	}
	if fc.Workers != nil {
		s.Workers = fc.Workers
	}
	if fc.Sites != nil {
		s.siteFiles, s.sitesSource = fc.Sites, path
	}
	if fc.TLS != nil && fc.TLS.OnDemand != nil {
		s.onDemandLimits = *fc.TLS.OnDemand
	}
	if r := fc.Redis; r != nil {
		setIf(&s.Redis.URL, r.URL)
		setIf(&s.Redis.Prefix, r.Prefix)
		setIf(&s.Redis.OutageQueue, r.OutageQueue)
		setIf(&s.Redis.OutageMaxAge, r.OutageMaxAge)
	}
	if t := fc.TLS; t != nil {
		if t.Mode != nil {
			s.tlsModeSet = path + " tls.mode"
		}
		for _, k := range []struct {
			flag, key string
			set       bool
		}{
			{"domain", "domains", len(t.Domains) > 0}, {"acme-email", "acme_email", t.Email != nil},
			{"cert-cache", "cert_cache", t.CacheDir != nil}, {"acme-directory", "acme_directory", t.ACMEDirectory != nil},
			{"acme-ca-root", "acme_ca_root", t.ACMECARoot != nil}, {"tls-cert", "cert", t.CertFile != nil},
			{"tls-key", "key", t.KeyFile != nil}, {"https-addr", "https_addr", t.HTTPSAddr != nil},
			{"http-addr", "http_addr", t.HTTPAddr != nil}, {"http-redirect", "http_redirect", t.HTTPRedirect != nil},
			{"hsts", "hsts", t.HSTS != nil},
		} {
			if k.set {
				s.markTLS(k.flag, path+" tls."+k.key)
			}
		}
		setIf(&s.TLS.Mode, t.Mode)
		if len(t.Domains) > 0 {
			s.TLS.Domains = t.Domains
		}
		setIf(&s.TLS.Email, t.Email)
		setIf(&s.TLS.CacheDir, t.CacheDir)
		setIf(&s.TLS.ACMEDirectory, t.ACMEDirectory)
		setIf(&s.TLS.ACMECARoot, t.ACMECARoot)
		setIf(&s.TLS.CertFile, t.CertFile)
		setIf(&s.TLS.KeyFile, t.KeyFile)
		setIf(&s.TLS.HTTPSAddr, t.HTTPSAddr)
		setIf(&s.TLS.HTTPAddr, t.HTTPAddr)
		setIf(&s.TLS.HTTPRedirect, t.HTTPRedirect)
		setIf(&s.TLS.HSTS, t.HSTS)
		setIf(&s.TLS.HTTP2, t.HTTP2)
		s.hstsChosen = t.HSTS != nil
	}
	return nil
}

// applyFileProxy sets what a YAML proxy section names (the top-level one, or a site's).
func applyFileProxy(dst *proxy.Config, p *fileProxy, path string) error {
	setIf(&dst.Root, p.Root)
	setIf(&dst.FrontController, p.FrontController)
	if len(p.Upstreams) > 0 {
		dst.Upstreams = p.Upstreams
	}
	if p.MaxBody != nil {
		dst.MaxBody = int64(*p.MaxBody)
	}
	setIf(&dst.ConnectTimeout, p.ConnectTimeout)
	setIf(&dst.ReadTimeout, p.ReadTimeout)
	setIf(&dst.WriteTimeout, p.WriteTimeout)
	setIf(&dst.BodyTimeout, p.BodyTimeout)
	if p.BodyBufferLimit != nil {
		dst.BodyBufferLimit = int64(*p.BodyBufferLimit)
	}
	setIf(&dst.StreamRequestBodies, p.StreamRequestBodies)
	setIf(&dst.AllowAnyHost, p.AllowAnyHost)
	if p.SymlinkRoots != nil {
		dst.SymlinkRoots = p.SymlinkRoots
	}
	if p.SendfileRoots != nil {
		dst.SendfileRoots = p.SendfileRoots
	}
	if p.TrustedProxies != nil {
		dst.TrustedProxies = p.TrustedProxies
	}
	if p.Compress != nil {
		dst.DisableCompression = !*p.Compress
	}
	setIf(&dst.CompressLevel, p.CompressLevel)
	setIf(&dst.BuildDir, p.BuildDir)
	if n := p.PreviousReleases; n != nil {
		if *n < 0 {
			return fmt.Errorf("%s: proxy.previous_releases: invalid value %d: want a whole number ≥ 0 (0 = off)", path, *n)
		}
		dst.PreviousReleases = offIfZero(*n)
	}
	setIf(&dst.PreviousReleasesWindow, p.PreviousReleasesWindow)
	if p.PreviousReleasesCopyLimit != nil {
		dst.PreviousReleasesCopyLimit = int64(*p.PreviousReleasesCopyLimit)
	}
	if f := p.AuthLaneShare; f != nil {
		if *f < 0 || *f > 1 {
			return fmt.Errorf("%s: proxy.auth_lane_share: invalid value %v: want a share from 0 (off) to 1", path, *f)
		}
		dst.AuthLaneShare = shareOrOff(*f)
	}
	setIf(&dst.AuthQueue, p.AuthQueue)
	setIf(&dst.AuthQueueTimeout, p.AuthQueueTimeout)
	return nil
}

// markTLS records that a TLS-only setting was given, and where; a later layer's source replaces
// an earlier one's, as its value does.
func (s *settings) markTLS(flag, source string) {
	if s.tlsSet == nil {
		s.tlsSet = map[string]string{}
	}
	s.tlsSet[flag] = source
}

// inferTLSMode turns TLS on when the settings ask for it without naming a mode: a certificate and
// key mean files, --domain means auto (the Caddy-like default Laravel teams expect). A TLS-only
// setting that is left with TLS off is an error naming it: a certificate that is silently not
// served is worse than a refusal to start. keepListen is true when the development listener was
// asked for (or a YAML file describes the listeners).
func (s *settings) inferTLSMode(keepListen bool) error {
	if s.TLS.Mode == fdtls.ModeOff && s.tlsModeSet == "" {
		var inferred fdtls.Mode
		switch {
		case s.TLS.CertFile != "" && s.TLS.KeyFile != "":
			inferred = fdtls.ModeFiles
		case s.TLS.CertFile == "" && s.TLS.KeyFile == "" && len(s.TLS.Domains) > 0:
			inferred = fdtls.ModeAuto
		}
		if inferred != "" {
			s.TLS.Mode = inferred
			if !keepListen {
				s.Listen = "" // the TLS listeners serve; no development listener unless asked for
			}
			return nil
		}
	}
	if s.TLS.Mode != fdtls.ModeOff || len(s.tlsSet) == 0 {
		return nil
	}
	why := "TLS is off"
	if s.tlsModeSet != "" {
		why += " (" + s.tlsModeSet + ")"
	}
	var errs []error
	for _, o := range serveOptions() { // flag order, so the message is stable
		src, ok := s.tlsSet[o.name]
		if !ok {
			continue
		}
		if o.name == "cert-cache" && s.TLS.CacheDir == fdtls.DefaultConfig().CacheDir {
			continue // the state directory at its default, as the systemd unit sets it: nothing is lost
		}
		switch {
		case s.tlsModeSet == "" && o.name == "tls-cert":
			errs = append(errs, fmt.Errorf("%s: a certificate without --tls-key; --tls files needs both", src))
		case s.tlsModeSet == "" && o.name == "tls-key":
			errs = append(errs, fmt.Errorf("%s: a key without --tls-cert; --tls files needs both", src))
		default:
			errs = append(errs, fmt.Errorf("%s: set while %s, so it would be ignored; choose --tls files, auto or self-signed, or remove it", src, why))
		}
	}
	return errors.Join(errs...)
}

func setIf[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// app returns the app with this id, adding it when absent. The Laravel .env and the --app-* flags
// name one app; a YAML file may already hold it (same id) or hold others beside it.
func (s *settings) app(id string) *pusher.AppConfig {
	for i := range s.Pusher.Apps {
		if s.Pusher.Apps[i].ID == id {
			return &s.Pusher.Apps[i]
		}
	}
	s.Pusher.Apps = append(s.Pusher.Apps, pusher.AppConfig{ID: id})
	return &s.Pusher.Apps[len(s.Pusher.Apps)-1]
}

// validate checks the settings this file owns, then each package's Config. Every message names
// the key and the bad value.
func (s *settings) validate() error {
	var errs []error
	if s.Listen != "" {
		if _, _, err := net.SplitHostPort(s.Listen); err != nil {
			errs = append(errs, badValue("listen", s.Listen, "want host:port, e.g. 127.0.0.1:8080"))
		}
	}
	if s.Admin != "off" && s.Admin != "" {
		if _, _, err := net.SplitHostPort(s.Admin); err != nil {
			errs = append(errs, badValue("admin", s.Admin, `want host:port, e.g. 127.0.0.1:9601, or "off"`))
		}
	}
	switch s.LogFormat {
	case "auto", "json", "console":
	default:
		errs = append(errs, badValue("log-format", s.LogFormat, "want auto, json or console"))
	}
	if _, err := parseLevel(s.LogLevel); err != nil {
		errs = append(errs, badValue("log-level", s.LogLevel, "want trace, debug, info, warn or error"))
	}
	if s.ShutdownTimeout < 0 {
		errs = append(errs, badValue("shutdown-timeout", s.ShutdownTimeout.String(), "want a duration ≥ 0, e.g. 10s"))
	}
	if s.TLS.Mode == fdtls.ModeOff && s.Listen == "" && !s.anySiteTLS() {
		errs = append(errs, errors.New("listen: empty while tls is off: nothing would be served; set --listen or --tls"))
	}
	if err := s.validateProxyProtocol(); err != nil {
		errs = append(errs, err)
	}
	if err := s.Pusher.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := s.Proxy.Validate(); err != nil {
		errs = append(errs, err)
	}
	tc := s.TLS
	if len(s.Sites) > 0 {
		// Each site's certificate source was checked by resolveSites; here only the listeners.
		tc.Mode = fdtls.ModeSelfSigned
	}
	if err := tc.Validate(); err != nil {
		errs = append(errs, err)
	}
	if s.Redis.URL != "" {
		if err := s.Redis.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := workers.Validate(s.Workers); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func parsePositiveInt(source, v string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 {
		return 0, badValue(source, v, "want a whole number ≥ 0")
	}
	return n, nil
}

// byteSize is a YAML size: a number of bytes or a string such as "64M" (parseByteSize).
type byteSize int64

func (b *byteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseByteSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: invalid size %q: %v", n.Line, n.Value, err)
	}
	*b = byteSize(v)
	return nil
}
