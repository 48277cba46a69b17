package doctor

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// routeLiteralRE finds quoted route paths in routes/*.php: 'app/…' or '/apps/…'.
var routeLiteralRE = regexp.MustCompile(`['"](/?[A-Za-z0-9_.\-/]*apps?/[^'"\s]*)['"]`)

// checkRouteConflicts: frontdoor serves {prefix}/app/{key} and {prefix}/apps/{id}/… itself and
// leaves every other path under /app and /apps to PHP (Filament's panel at /app keeps working).
// Only a route whose segment after app/ or apps/ is the app key or id itself is shadowed; moving
// the Pusher side with --path-prefix (REVERB_SERVER_PATH) ends the conflict.
func (p *project) checkRouteConflicts(b broadcaster) {
	if !p.usesReverb(b) && !p.selfHostedPusher(b) {
		return
	}
	prefix := "REVERB_APP_"
	if !p.usesReverb(b) {
		prefix = "PUSHER_APP_"
	}
	mount := strings.Trim(p.val("REVERB_SERVER_PATH"), "/")
	owned := map[string]string{} // "app/<key>" → the variable that made it the Pusher side's
	if k := p.val(prefix + "KEY"); k != "" {
		owned[strings.TrimPrefix(mount+"/app/"+k, "/")] = prefix + "KEY"
	}
	if id := p.val(prefix + "ID"); id != "" {
		owned[strings.TrimPrefix(mount+"/apps/"+id, "/")] = prefix + "ID"
	}
	files := 0
	_ = filepath.WalkDir(filepath.Join(p.dir, "routes"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".php") {
			return nil
		}
		if files++; files > 200 { // a routes/ directory is small; stop on anything else
			return filepath.SkipAll
		}
		data, err := os.ReadFile(path)
		if err != nil || len(data) > 1<<20 {
			return nil
		}
		rel, _ := filepath.Rel(p.dir, path)
		for _, m := range routeLiteralRE.FindAllStringSubmatch(string(data), -1) {
			route := strings.Trim(m[1], "/")
			for own, key := range owned {
				if route == own || strings.HasPrefix(route, own+"/") {
					p.addFile(Warning, "route-conflict", rel, fmt.Sprintf(
						"the route /%s is shadowed: /%s is where frontdoor serves the Pusher %s (%s), so PHP never sees it",
						route, own, map[bool]string{true: "socket", false: "HTTP API"}[strings.HasSuffix(key, "KEY")], key),
						"move the Pusher side under a prefix: frontdoor serve --path-prefix /ws and REVERB_SERVER_PATH=/ws (the broadcaster and Echo follow it), or rename the route")
				}
			}
		}
		return nil
	})
}
