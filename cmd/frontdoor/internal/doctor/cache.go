package doctor

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

const configCache = "bootstrap/cache/config.php"

// checkConfigCache: laravel-config.md §1 and §5 #9. After `php artisan config:cache` Laravel
// never reads .env again: the publisher and queue workers keep the cached values until the
// cache is rebuilt. doctor compares the cache with the file.
func (p *project) checkConfigCache(b broadcaster) {
	cachePath := filepath.Join(p.dir, filepath.FromSlash(configCache))
	st, err := os.Stat(cachePath)
	if err != nil {
		return
	}
	const fix = "php artisan config:cache   (then php artisan queue:restart so workers load it)"
	if envSt, err := os.Stat(p.file.Path); err == nil && st.ModTime().Before(envSt.ModTime()) {
		p.addFile(Warning, "config-cache-stale", configCache, fmt.Sprintf(
			"the config cache (%s) is older than the .env (%s): Laravel ignores .env edits made since",
			st.ModTime().UTC().Format("2006-01-02 15:04:05Z"), envSt.ModTime().UTC().Format("2006-01-02 15:04:05Z")), fix)
	}
	data, err := os.ReadFile(cachePath)
	if err != nil {
		return
	}
	cfg, err := parseConfigCache(string(data))
	if err != nil {
		p.addFile(Warning, "config-cache-unreadable", configCache, "doctor cannot read the config cache ("+err.Error()+"); it cannot compare it with the .env", fix)
		return
	}

	type pair struct {
		envKey string
		path   []string
		cred   bool
	}
	pairs := []pair{
		{"REVERB_APP_KEY", []string{"broadcasting", "connections", "reverb", "key"}, true},
		{"REVERB_APP_SECRET", []string{"broadcasting", "connections", "reverb", "secret"}, true},
		{"REVERB_APP_ID", []string{"broadcasting", "connections", "reverb", "app_id"}, true},
		{"REVERB_HOST", []string{"broadcasting", "connections", "reverb", "options", "host"}, false},
		{"REVERB_PORT", []string{"broadcasting", "connections", "reverb", "options", "port"}, false},
		{"REVERB_SCHEME", []string{"broadcasting", "connections", "reverb", "options", "scheme"}, false},
		{"REVERB_APP_KEY", []string{"reverb", "apps", "apps", "0", "key"}, true},
		{"REVERB_APP_SECRET", []string{"reverb", "apps", "apps", "0", "secret"}, true},
		{"REVERB_APP_ID", []string{"reverb", "apps", "apps", "0", "app_id"}, true},
		{"PUSHER_APP_KEY", []string{"broadcasting", "connections", "pusher", "key"}, true},
		{"PUSHER_APP_SECRET", []string{"broadcasting", "connections", "pusher", "secret"}, true},
		{"PUSHER_APP_ID", []string{"broadcasting", "connections", "pusher", "app_id"}, true},
	}
	var diffs []string
	sev := Warning
	seen := make(map[string]bool)
	for _, pr := range pairs {
		cached, ok := lookupPath(cfg, pr.path...)
		envV, _, envOK := p.get(pr.envKey)
		if !ok || !envOK || seen[pr.envKey] {
			continue
		}
		if cv := phpString(cached); cv != envV {
			seen[pr.envKey] = true
			diffs = append(diffs, fmt.Sprintf("%s: cached %s, .env %s", pr.envKey, show(pr.envKey, cv), show(pr.envKey, envV)))
			if pr.cred {
				sev = Error
			}
		}
	}
	if def, ok := lookupPath(cfg, "broadcasting", "default"); ok && b.name != "" && phpString(def) != b.name {
		diffs = append(diffs, fmt.Sprintf("%s: cached %q, .env %q", b.key, phpString(def), b.name))
		sev = Error
	}
	if len(diffs) > 0 {
		p.addFile(sev, "config-cache-stale", configCache, "the config cache disagrees with the .env, and Laravel uses the cache: "+strings.Join(diffs, "; "), fix)
	}
}
