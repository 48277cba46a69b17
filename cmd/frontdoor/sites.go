package main

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/frontdoorhq/frontdoor/internal/dotenv"
	"github.com/frontdoorhq/frontdoor/proxy"
	"github.com/frontdoorhq/frontdoor/pusher"
	fdtls "github.com/frontdoorhq/frontdoor/tls"
)

// Sites: several Laravel apps behind one frontdoor, as several Nginx server {} blocks (issue #17).
// Each site has its host names, its proxy (root, upstreams, limits), its Pusher apps and its
// certificate source; requests go to a site by Host, TLS handshakes by SNI. Without `sites:` the
// flags describe one implicit site, as they always did.

// fileSite is one entry of the YAML `sites:` list.
type fileSite struct {
	Name     string             `yaml:"name"`
	Hosts    []string           `yaml:"hosts"`
	Default  bool               `yaml:"default"`
	EnvFile  *string            `yaml:"env_file"`
	Apps     []pusher.AppConfig `yaml:"apps"`
	Proxy    *fileProxy         `yaml:"proxy"`
	TLS      *fileSiteTLS       `yaml:"tls"`
	OnDemand *fileOnDemand      `yaml:"on_demand"`
}

type fileSiteTLS struct {
	Mode *fdtls.Mode `yaml:"mode"`
	Cert *string     `yaml:"cert"`
	Key  *string     `yaml:"key"`
}

// fileOnDemand is a site's on-demand TLS: before ordering a certificate for a name it does not
// list, frontdoor asks the site's app GET {ask}?domain=name and orders only on 200.
type fileOnDemand struct {
	Ask        string         `yaml:"ask"`
	RefusedTTL *time.Duration `yaml:"refused_ttl"`
}

// fileOnDemandLimits bound on-demand work across all sites (YAML tls.on_demand).
type fileOnDemandLimits struct {
	OrdersPerMinute *float64 `yaml:"orders_per_minute"`
	Burst           *int     `yaml:"burst"`
	AsksPerMinute   *float64 `yaml:"asks_per_minute"`
}

// siteSettings is one resolved site.
type siteSettings struct {
	Name  string
	Hosts []string // lower case; exact names and "*.example.com" (one label)
	// Default takes requests and handshakes that name no host: a bare IP, no SNI.
	Default bool
	EnvFile string
	// Apps are the Pusher apps this site owns (its YAML apps and its env_file's); OwnsApps false
	// means the site shares the top-level apps.
	Apps     []pusher.AppConfig
	OwnsApps bool
	Proxy    proxy.Config
	// TLS is the site's certificate source: Mode off, auto, files or self-signed; Domains its
	// exact names (wildcards come from cert files or on-demand issuance).
	TLS      fdtls.Config
	OnDemand *onDemandSettings
}

type onDemandSettings struct {
	Ask        string
	RefusedTTL time.Duration
}

// siteFlags are the flags that describe the one implicit site: beside `sites:` they would be
// ambiguous (which site?), so giving one is a start-up error naming it.
var siteFlags = []string{"root", "upstream", "symlink-root", "max-body", "allow-any-host", "domain",
	"tls-cert", "tls-key", "app-id", "app-key", "app-secret"}

// checkSiteFlags refuses the one-site flags (and their FRONTDOOR_* variables) beside `sites:`.
func (s *settings) checkSiteFlags(opts []*option, envPathSet bool, envPath string) error {
	var errs []error
	for _, o := range opts {
		if o.source != "" && slices.Contains(siteFlags, o.name) {
			errs = append(errs, fmt.Errorf("%s: set beside sites: in %s; it describes the one site of a flags-only setup: put it in a site's proxy, tls or apps section", o.source, s.sitesSource))
		}
	}
	if envPathSet && envPath != "" {
		errs = append(errs, fmt.Errorf("--env-file: set beside sites: in %s; give each site its env_file", s.sitesSource))
	}
	return errors.Join(errs...)
}

// resolveSites turns the YAML sites into siteSettings: each site's proxy starts from the
// top-level proxy section (so shared timeouts are written once), its TLS from the top-level tls
// section (ACME account, cache, listeners). Every site's apps join the one Pusher server; ids and
// keys must be unique across sites.
func (s *settings) resolveSites() error {
	var errs []error
	src := s.sitesSource
	if len(s.TLS.Domains) > 0 || s.TLS.CertFile != "" || s.TLS.KeyFile != "" {
		errs = append(errs, fmt.Errorf("%s: tls.domains, tls.cert and tls.key describe one site: with sites:, give each site its hosts and its tls section", src))
	}
	owner := map[string]string{} // host → site name
	appOwner := map[string]string{}
	for _, a := range s.Pusher.Apps {
		appOwner["id "+a.ID], appOwner["key "+a.Key] = "the top-level apps", "the top-level apps"
	}
	defaults, catchAll := 0, 0
	baseDir := filepath.Dir(src)
	for i, f := range s.siteFiles {
		name := f.Name
		if name == "" && len(f.Hosts) > 0 {
			name = strings.ToLower(f.Hosts[0])
		}
		if name == "" {
			name = fmt.Sprintf("site%d", i+1)
		}
		at := fmt.Sprintf("%s: sites[%d] (%s)", src, i, name)
		site := siteSettings{Name: name, Default: f.Default, Proxy: s.Proxy, TLS: s.TLS}
		site.Proxy.Hosts = nil
		for _, h := range f.Hosts {
			n, err := siteHostName(h)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s hosts: %w", at, err))
				continue
			}
			if o, ok := owner[n]; ok {
				errs = append(errs, fmt.Errorf("%s hosts: %q is also a host of site %s", at, n, o))
				continue
			}
			owner[n] = name
			site.Hosts = append(site.Hosts, n)
		}
		if f.EnvFile != nil && *f.EnvFile != "" {
			site.EnvFile = *f.EnvFile
			if !filepath.IsAbs(site.EnvFile) {
				site.EnvFile = filepath.Join(baseDir, site.EnvFile)
			}
			if f.Proxy == nil || f.Proxy.Root == nil {
				// Laravel's layout: the .env beside public/.
				site.Proxy.Root = filepath.Join(filepath.Dir(site.EnvFile), "public")
			}
		}
		if f.Proxy != nil {
			if err := applyFileProxy(&site.Proxy, f.Proxy, at); err != nil {
				errs = append(errs, err)
			}
		}
		apps, err := s.siteApps(f.Apps, site.EnvFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s env_file: %w", at, err))
		}
		site.Apps, site.OwnsApps = apps, len(apps) > 0
		for _, a := range apps {
			for _, k := range []string{"id " + a.ID, "key " + a.Key} {
				if o, ok := appOwner[k]; ok {
					errs = append(errs, fmt.Errorf("%s apps: app %s is also used by %s: app ids and keys must be unique across sites (one Pusher server serves them all)", at, k, o))
				}
				appOwner[k] = "site " + name
			}
		}
		s.Pusher.Apps = append(s.Pusher.Apps, apps...)

		site.TLS.Mode = fdtls.ModeAuto
		if s.tlsModeSet != "" {
			site.TLS.Mode = s.TLS.Mode
		}
		if t := f.TLS; t != nil {
			setIf(&site.TLS.CertFile, t.Cert)
			setIf(&site.TLS.KeyFile, t.Key)
			if t.Cert != nil && t.Key != nil {
				site.TLS.Mode = fdtls.ModeFiles
			}
			setIf(&site.TLS.Mode, t.Mode)
		}
		for _, h := range site.Hosts {
			if !strings.HasPrefix(h, "*.") && net.ParseIP(h) == nil {
				site.TLS.Domains = append(site.TLS.Domains, h)
			}
		}
		if od := f.OnDemand; od != nil {
			if !strings.HasPrefix(od.Ask, "/") {
				errs = append(errs, badValue(at+" on_demand.ask", od.Ask, "want the path of the app's check, e.g. /tls/allowed"))
			}
			site.OnDemand = &onDemandSettings{Ask: od.Ask, RefusedTTL: 10 * time.Minute}
			setIf(&site.OnDemand.RefusedTTL, od.RefusedTTL)
			if site.TLS.Mode != fdtls.ModeAuto {
				errs = append(errs, fmt.Errorf("%s on_demand: needs tls.mode auto (ACME), not %q", at, site.TLS.Mode))
			}
		}
		if s.hstsDefaulted && site.TLS.Mode != fdtls.ModeAuto {
			site.TLS.HSTS = 0
		}
		switch site.TLS.Mode {
		case "auto":
			if slices.ContainsFunc(site.Hosts, func(h string) bool { return strings.HasPrefix(h, "*.") }) && site.OnDemand == nil {
				errs = append(errs, fmt.Errorf("%s hosts: ACME cannot issue wildcard certificates here (http-01 and tls-alpn-01 only); use tls.cert/tls.key with a wildcard certificate, or on_demand", at))
			}
		case "off", "files", "self-signed":
		default:
			errs = append(errs, badValue(at+" tls.mode", string(site.TLS.Mode), "want off, auto, files or self-signed"))
		}
		site.Proxy.AllowAnyHost = f.Proxy != nil && f.Proxy.AllowAnyHost != nil && *f.Proxy.AllowAnyHost
		if site.Proxy.AllowAnyHost {
			catchAll++
		}
		if len(site.Hosts) == 0 && site.OnDemand == nil && !site.Proxy.AllowAnyHost {
			errs = append(errs, fmt.Errorf("%s hosts: none; a site needs host names (or on_demand, or proxy.allow_any_host for a catch-all)", at))
		}
		if site.Default {
			defaults++
		}
		if err := site.Proxy.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("%s proxy: %w", at, err))
		}
		if site.TLS.Mode != fdtls.ModeOff && site.TLS.Mode != fdtls.ModeAuto {
			if err := site.TLS.Validate(); err != nil {
				errs = append(errs, fmt.Errorf("%s tls: %w", at, err))
			}
		}
		s.Sites = append(s.Sites, site)
	}
	if defaults > 1 {
		errs = append(errs, fmt.Errorf("%s: %d sites say default: true; at most one takes requests without a host name", src, defaults))
	}
	if catchAll > 1 {
		errs = append(errs, fmt.Errorf("%s: %d sites set proxy.allow_any_host; at most one site takes unknown host names", src, catchAll))
	}
	if defaults == 0 && len(s.Sites) > 0 {
		s.Sites[0].Default = true
	}
	return errors.Join(errs...)
}

// siteHostName checks and normalises a site's host name: lower case, no trailing dot, a wildcard
// only as the whole first label.
func siteHostName(h string) (string, error) {
	n := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(h), "."))
	rest := strings.TrimPrefix(n, "*.")
	switch {
	case n == "":
		return "", errors.New("an empty host name")
	case strings.Trim(rest, "abcdefghijklmnopqrstuvwxyz0123456789-_.") != "" || strings.Contains(rest, "..") ||
		strings.HasPrefix(rest, ".") || strings.HasSuffix(rest, "."):
		return "", badValue("host", h, "want a bare name (app.example.com, xn-- for international names) or a wildcard first label (*.example.com); no scheme, port or path")
	case !strings.Contains(rest, ".") && net.ParseIP(rest) == nil && rest != "localhost":
		return "", badValue("host", h, "want a fully qualified name such as app.example.com")
	}
	return n, nil
}

// siteApps is a site's own apps: its YAML apps, and the app its env_file's REVERB_* (or PUSHER_*)
// describe, read as --env-file reads one. The process environment is not consulted: one REVERB_*
// variable there cannot belong to every site.
func (s *settings) siteApps(yamlApps []pusher.AppConfig, envFile string) ([]pusher.AppConfig, error) {
	tmp := settings{}
	tmp.Pusher.Apps = slices.Clone(yamlApps)
	if envFile != "" {
		f, err := dotenv.Load(envFile)
		if err != nil {
			return tmp.Pusher.Apps, err
		}
		if err := tmp.applyLaravel(laravelEnv{lookup: func(string) (string, bool) { return "", false }, file: f}); err != nil {
			return tmp.Pusher.Apps, err
		}
		s.notices = append(s.notices, tmp.notices...)
	}
	return tmp.Pusher.Apps, nil
}

// anySiteTLS reports whether some site serves TLS, so the :443 and :80 listeners run.
func (s *settings) anySiteTLS() bool {
	for _, site := range s.Sites {
		if site.TLS.Mode != fdtls.ModeOff {
			return true
		}
	}
	return false
}
