package doctor

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

var leftoverRefRE = regexp.MustCompile(`\$\{([A-Za-z0-9_.]+)\}`)

// viteValue is what Vite bakes in for a VITE_ variable. Vite expands ${NAME} against the whole
// file (dotenv-expand), not line by line like phpdotenv, so a reference to a later line that
// phpdotenv left as text still resolves here.
func (p *project) viteValue(key, v string) string {
	return leftoverRefRE.ReplaceAllStringFunc(v, func(ref string) string {
		name := ref[2 : len(ref)-1]
		if name == key {
			return ref
		}
		if rv, _, ok := p.file.Get(name); ok && !strings.Contains(rv, "${") {
			return rv
		}
		return ref
	})
}

// viteVar pairs a browser variable with the server variable it must mirror (reverb:install
// writes VITE_REVERB_X="${REVERB_X}").
type viteVar struct {
	vite, server string
	critical     bool // missing or empty breaks every connection
	effect       string
}

var viteVars = []viteVar{
	{"VITE_REVERB_APP_KEY", "REVERB_APP_KEY", true, "Echo has no key: pusher-js throws \"You must pass your app key\", or connects to /app/ and gets 4001"},
	{"VITE_REVERB_HOST", "REVERB_HOST", true, "Echo connects to ws-.pusher.com instead of your server"},
	{"VITE_REVERB_PORT", "REVERB_PORT", false, "Echo uses port 443 for wss (80 for ws)"},
	{"VITE_REVERB_SCHEME", "REVERB_SCHEME", false, "Echo uses TLS (forceTLS defaults to https)"},
}

// checkVite: laravel-config.md §4 and §5 #5. The browser gets only what Vite baked in from
// VITE_* at build time.
func (p *project) checkVite() {
	if !p.has("REVERB_APP_KEY") {
		return
	}
	pub := p.endpoint("the publisher", "REVERB_", "HOST")
	split := isLoopback(pub.host) // publisher over loopback, browsers on the public name (§7)
	for _, vv := range viteVars {
		raw, line, ok := p.get(vv.vite)
		fix := fmt.Sprintf("%s=\"${%s}\"   (written after the %s line; then npm run build)", vv.vite, vv.server, vv.server)
		serverV, _, serverOK := p.get(vv.server)
		if !ok || raw == "" {
			if !vv.critical {
				// Echo's defaults (443, https) are right when the server side says the same.
				if !serverOK || (vv.server == "REVERB_PORT" && pub.port == "443") || (vv.server == "REVERB_SCHEME" && pub.scheme == "https") {
					continue
				}
			}
			sev := Warning
			if vv.critical {
				sev = Error
			}
			state := "is not set"
			if ok {
				state = "is empty"
			}
			p.add(sev, "vite-missing", line, fmt.Sprintf("%s %s: %s", vv.vite, state, vv.effect), fix)
			continue
		}
		v := p.viteValue(vv.vite, raw)
		if m := leftoverRefRE.FindStringSubmatch(v); m != nil {
			p.add(Error, "vite-unresolved", line, fmt.Sprintf("%s=%s refers to %s, which the .env does not define: Laravel keeps the text %q and Vite bakes in an empty string", vv.vite, raw, m[1], v),
				fmt.Sprintf("define %s, or write %s=\"${%s}\"", m[1], vv.vite, vv.server))
			continue
		}
		if !serverOK || v == serverV {
			continue
		}
		switch {
		case vv.vite == "VITE_REVERB_APP_KEY":
			p.add(Error, "vite-mismatch", line, fmt.Sprintf("VITE_REVERB_APP_KEY=%q differs from REVERB_APP_KEY=%q: browsers would connect with a key the server does not know (4001)", v, serverV), fix)
		case split:
			// The documented split: the publisher on loopback, browsers on the public name.
		case vv.vite == "VITE_REVERB_HOST" && p.production() && isLoopback(v):
			// checkProductionHost reports it as vite-host-loopback.
		default:
			p.add(Warning, "vite-mismatch", line, fmt.Sprintf("%s=%q differs from %s=%q: browsers and the publisher would look for the server in different places", vv.vite, v, vv.server, serverV), fix)
		}
	}
}

// maxBundleBytes bounds how much of public/build doctor reads.
const maxBundleBytes = 64 << 20

// checkViteBuild: #5, stale build. Vite replaces import.meta.env.VITE_* with literal strings,
// so the key and host must appear in public/build/assets/*.js; if they do not, the bundle was
// built from other values (or before they were set).
func (p *project) checkViteBuild() {
	files, _ := filepath.Glob(filepath.Join(p.dir, "public", "build", "assets", "*.js"))
	if len(files) == 0 {
		return
	}
	var bundle []byte
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		data, _ := io.ReadAll(io.LimitReader(fh, maxBundleBytes-int64(len(bundle))))
		fh.Close()
		bundle = append(bundle, data...)
		if len(bundle) >= maxBundleBytes {
			break
		}
	}
	// pusher-js carries this message; without it the front end has no Echo/pusher-js at all.
	if !bytes.Contains(bundle, []byte("You must pass your app key")) {
		return
	}
	for _, key := range []string{"VITE_REVERB_APP_KEY", "VITE_REVERB_HOST"} {
		raw, line, ok := p.get(key)
		if !ok || raw == "" {
			continue
		}
		v := p.viteValue(key, raw)
		if strings.Contains(v, "${") || bytes.Contains(bundle, []byte(v)) {
			continue
		}
		p.addFile(Warning, "vite-stale-build", filepath.Join("public", "build", "assets"), fmt.Sprintf(
			"the built front end does not contain %s=%q (%s:%d): it was built with other values or before they were set, so browsers use the old ones", key, v, p.envPath, line),
			"npm run build   (in the project root, after every VITE_* change)")
	}
}
