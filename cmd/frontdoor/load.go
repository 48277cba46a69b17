package main

import (
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/frontdoorhq/frontdoor/cmd/frontdoor/internal/workers"
	"github.com/frontdoorhq/frontdoor/internal/dotenv"
	"github.com/frontdoorhq/frontdoor/pusher"
	fdtls "github.com/frontdoorhq/frontdoor/tls"
)

// loadSettings assembles the settings from every layer, lowest first:
// defaults < YAML --config < Laravel .env < FRONTDOOR_* < flags.
// It returns flag.ErrHelp for --help.
func loadSettings(args []string, lookup func(string) (string, bool), stderr io.Writer) (settings, error) {
	s := defaultSettings()
	fs := newFlagSet("serve", stderr)
	var configPath, envPath string
	envPathSet := false
	fs.StringVar(&configPath, "config", "", "YAML `file` with listeners, apps, proxy and tls sections")
	fs.Func("env-file", "Laravel `.env` to read REVERB_* from (default ./.env when present; \"\" for none)", func(v string) error {
		envPath, envPathSet = v, true
		return nil
	})
	opts := serveOptions()
	for _, o := range opts {
		fs.Var(o, o.name, o.usage)
	}
	if err := fs.Parse(args); err != nil {
		return s, err
	}
	if fs.NArg() > 0 {
		return s, fmt.Errorf("unexpected argument %q (flags start with --)", fs.Arg(0))
	}
	if configPath == "" {
		configPath, _ = lookup("FRONTDOOR_CONFIG")
	}
	if !envPathSet {
		if v, ok := lookup("FRONTDOOR_ENV_FILE"); ok {
			envPath, envPathSet = v, true
		}
	}
	for _, o := range opts {
		o.fromEnv(lookup)
	}

	if configPath != "" {
		if err := s.applyYAML(configPath); err != nil {
			return s, err
		}
	}

	env := laravelEnv{lookup: lookup}
	if len(s.siteFiles) > 0 {
		// Each site reads its own env_file (sites.go); ./.env is not one of them.
		if err := s.checkSiteFlags(opts, envPathSet, envPath); err != nil {
			return s, err
		}
		envPath, envPathSet = "", true
	}
	if !envPathSet {
		// Laravel teams start servers from the project root; Reverb reads ./.env from there too.
		if _, err := os.Stat(".env"); err == nil {
			envPath = ".env"
		}
	}
	if envPath != "" {
		f, err := dotenv.Load(envPath)
		if err != nil {
			return s, fmt.Errorf("--env-file: %w", err)
		}
		env.file = f
	}
	if err := s.applyLaravel(env); err != nil {
		return s, err
	}
	if err := s.checkDotenvOptions(env, opts); err != nil {
		return s, err
	}

	var errs []error
	for _, o := range opts {
		if o.source == "" {
			continue
		}
		if err := o.apply(&s, o.values); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return s, err
	}

	for _, o := range opts {
		if o.source == "" {
			continue
		}
		if o.name == "tls" {
			s.tlsModeSet = o.source
		} else if o.tlsOnly {
			s.markTLS(o.name, o.source)
		}
	}
	// ACME certificates are for a public name that will keep a valid certificate: browsers are told
	// to stay on https (HSTS, this host only) unless the operator chose a value, 0 included.
	hstsDefault := !s.hstsChosen && !optionSet(opts, "hsts")
	if len(s.siteFiles) > 0 {
		if hstsDefault && (s.TLS.Mode == fdtls.ModeAuto || s.tlsModeSet == "") {
			s.TLS.HSTS = defaultACMEHSTS // each ACME site sends it; other sites none (resolveSites)
			s.hstsDefaulted = true
		}
		if err := s.resolveSites(); err != nil {
			return s, err
		}
	}
	if !s.anySiteTLS() {
		if err := s.inferTLSMode(optionSet(opts, "listen") || configPath != ""); err != nil {
			return s, err
		}
	}
	if s.TLS.Mode == fdtls.ModeAuto && hstsDefault {
		s.TLS.HSTS = defaultACMEHSTS
	}
	if len(s.Pusher.Apps) == 0 {
		s.Pusher.Apps = []pusher.AppConfig{devApp()}
		s.devCredentials = true
	}
	s.appRoot = appRoot(envPath, s.Proxy.Root)
	s.Workers = workers.Resolve(s.Workers, s.appRoot)
	return s, s.validate()
}

// appRoot is where `php artisan` runs: the directory of the .env that was read, else the parent
// of --root (Laravel's public/), else the current directory.
func appRoot(envPath, publicRoot string) string {
	dir := "."
	switch {
	case envPath != "":
		dir = filepath.Dir(envPath)
	case publicRoot != "":
		dir = filepath.Dir(filepath.Clean(publicRoot))
	}
	if abs, err := filepath.Abs(dir); err == nil {
		return abs
	}
	return dir
}

// defaultACMEHSTS is one year, the max-age browsers' preload rules and Mozilla's guidance use.
const defaultACMEHSTS = 365 * 24 * time.Hour

// checkDotenvOptions: FRONTDOOR_* settings come from the environment, not from the Laravel .env
// (which gives REVERB_* and the few FRONTDOOR_* variables applyLaravel reads). One written only in
// the file would be ignored: a TLS setting that way is a start-up error, as a TLS setting left with
// TLS off is; any other is a warning. Under systemd's EnvironmentFile= the variable is also in the
// environment, and applies.
func (s *settings) checkDotenvOptions(env laravelEnv, opts []*option) error {
	if env.file == nil {
		return nil
	}
	var errs []error
	for _, o := range opts {
		name := o.envName()
		if name == "FRONTDOOR_ALLOWED_ORIGINS" { // read from the .env by applyLaravel
			continue
		}
		_, line, inFile := env.file.Get(name)
		if _, inEnv := env.lookup(name); !inFile || inEnv {
			continue
		}
		msg := fmt.Sprintf("%s:%d %s is ignored: frontdoor reads FRONTDOOR_* settings from its environment, not from the Laravel .env; pass --%s or export the variable", env.file.Path, line, name, o.name)
		if o.tlsOnly || o.name == "tls" {
			errs = append(errs, errors.New(msg))
		} else {
			s.notices = append(s.notices, msg)
		}
	}
	return errors.Join(errs...)
}

func optionSet(opts []*option, name string) bool {
	for _, o := range opts {
		if o.name == name {
			return o.source != ""
		}
	}
	return false
}

// primaryApp is the app the --app-* flags describe: the one --app-id named, else the first.
func (s *settings) primaryApp() *pusher.AppConfig {
	if s.primary != "" {
		return s.app(s.primary)
	}
	if len(s.Pusher.Apps) == 0 {
		s.Pusher.Apps = append(s.Pusher.Apps, pusher.AppConfig{})
	}
	return &s.Pusher.Apps[0]
}

// renamePrimaryApp handles --app-id: it selects an app the YAML or .env already defined, or else
// names the first app (so `--app-id X --app-key K` overrides a .env app rather than adding one).
func (s *settings) renamePrimaryApp(id string) {
	s.primary = id
	for _, a := range s.Pusher.Apps {
		if a.ID == id {
			return
		}
	}
	if len(s.Pusher.Apps) == 1 {
		s.Pusher.Apps[0].ID = id
		return
	}
	s.app(id)
}

// devApp makes throw-away credentials in the shape reverb:install writes (laravel-config.md §2),
// so `frontdoor serve` with no configuration is immediately usable.
func devApp() pusher.AppConfig {
	n, _ := rand.Int(rand.Reader, big.NewInt(900000))
	return pusher.AppConfig{
		ID:     fmt.Sprint(100000 + n.Int64()),
		Key:    randomLower(20),
		Secret: randomLower(20),
	}
}

func randomLower(n int) string {
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		x, _ := rand.Int(rand.Reader, big.NewInt(int64(len(letters))))
		b[i] = letters[x.Int64()]
	}
	return string(b)
}

// isHelp tells the caller to exit 0 after flag's usage text.
func isHelp(err error) bool { return errors.Is(err, flag.ErrHelp) }
