package doctor

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/frontdoorhq/frontdoor/internal/dotenv"
)

// staticChecks runs every check that needs only files (laravel-config.md §5), in the order a
// user should fix things: the file itself, the broadcaster, the credentials, the addresses, the
// browser side, the cached config.
func (p *project) staticChecks(parseErr error) {
	var es dotenv.Errors
	if errors.As(parseErr, &es) {
		for _, e := range es {
			fix := e.Fix
			if fix == "" {
				fix = "rewrite the line as described"
			}
			msg := strings.TrimSpace(strings.TrimPrefix(e.Error(), fmt.Sprintf("%s:%d:", e.Path, e.Line)))
			p.add(Error, "env-parse-error", e.Line, msg+" (Laravel refuses to boot: Dotenv\\Exception\\InvalidFileException)", fix)
		}
	}
	p.checkDuplicates()
	p.checkEnvironmentOverrides()
	b := p.checkBroadcaster()
	p.checkPublishing(b)
	p.checkBroadcasterSDK(b)
	p.checkCredentials(b)
	p.checkPusherReverbAgree(b)
	p.checkPusherHost(b)
	p.checkAddresses(b)
	p.checkOrigins()
	p.checkRouteConflicts(b)
	p.checkVite()
	p.checkViteBuild()
	p.checkConfigCache(b)
	p.checkQueue(b)
}

// checkDuplicates: laravel-config.md §5 #2. The last line wins in PHP; the earlier ones are
// what someone meant to change and did not.
func (p *project) checkDuplicates() {
	dups := p.file.Duplicates()
	keys := make([]string, 0, len(dups))
	for k := range dups {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return dups[keys[i]][0] < dups[keys[j]][0] })
	for _, key := range keys {
		lines := dups[key]
		last, _ := p.file.Entry(key)
		same := true
		for _, e := range p.file.Entries {
			if e.Key == key && (e.Value != last.Value || e.Unset != last.Unset) {
				same = false
			}
		}
		effective := "unsets it"
		keep := key
		if !last.Unset {
			effective = "gives " + show(key, last.Value)
			keep = key + "=" + last.Raw
			if isSecretKey(key) {
				keep = key + "=<the value on line " + fmt.Sprint(last.Line) + ">"
			}
		}
		sev := Warning
		msg := fmt.Sprintf("%s is set %d times (lines %s) with different values; Laravel uses the last line, which %s (a variable in the process environment would beat all of them)",
			key, len(lines), joinLines(lines), effective)
		if same {
			sev = Info
			msg = fmt.Sprintf("%s is set %d times (lines %s) to the same value; harmless, but the next edit will change only one of them", key, len(lines), joinLines(lines))
		}
		p.add(sev, "duplicate-key", last.Line, msg,
			fmt.Sprintf("delete %s and keep line %d: %s", linesWord(lines[:len(lines)-1]), last.Line, keep))
	}
}

// watchedKeys are the variables doctor reasons about; a process-environment value for one of
// them beats the .env for every process started from the same environment.
var watchedKeys = []string{
	"APP_ENV", "APP_URL", "BROADCAST_CONNECTION", "BROADCAST_DRIVER", "QUEUE_CONNECTION",
	"REVERB_APP_ID", "REVERB_APP_KEY", "REVERB_APP_SECRET", "REVERB_HOST", "REVERB_PORT", "REVERB_SCHEME",
	"REVERB_SERVER_HOST", "REVERB_SERVER_PORT", "REVERB_SERVER_PATH", "REVERB_ALLOWED_ORIGINS", "FRONTDOOR_ALLOWED_ORIGINS",
	"PUSHER_APP_ID", "PUSHER_APP_KEY", "PUSHER_APP_SECRET", "PUSHER_HOST", "PUSHER_PORT", "PUSHER_SCHEME",
	"VITE_REVERB_APP_KEY", "VITE_REVERB_HOST", "VITE_REVERB_PORT", "VITE_REVERB_SCHEME",
}

// checkEnvironmentOverrides: laravel-config.md §1 — Laravel's env repository is immutable, so a
// real environment variable wins over the file. doctor checks the file; say where they differ.
func (p *project) checkEnvironmentOverrides() {
	if p.lookup == nil {
		return
	}
	for _, key := range watchedKeys {
		ev, ok := p.lookup(key)
		if !ok {
			continue
		}
		fv, line, inFile := p.file.Get(key)
		if inFile && fv == ev {
			continue
		}
		where := "is not in the file"
		if inFile {
			where = fmt.Sprintf("the file says %s", show(key, fv))
		}
		p.add(Info, "env-overrides-file", line, fmt.Sprintf("%s is set in this shell's environment to %s and %s; Laravel, Vite and frontdoor started from this environment use the environment's value (php-fpm with clear_env=yes and Supervisor programs have their own)",
			key, show(key, ev), where), "")
	}
}
