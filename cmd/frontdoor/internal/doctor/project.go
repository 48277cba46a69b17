package doctor

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/frontdoorhq/frontdoor/internal/dotenv"
)

// project is the Laravel application around the .env: the parsed file plus the files next to
// it that change what the values mean (composer.lock, config/*.php, the config cache, the
// built front end).
type project struct {
	envPath string // as the user gave it, for messages
	dir     string // the project root: the .env's directory
	file    *dotenv.File
	lookup  func(string) (string, bool) // the real environment

	findings []Finding
}

func (p *project) add(sev Severity, code string, line int, msg, fix string) {
	p.findings = append(p.findings, Finding{Severity: sev, Code: code, File: p.envPath, Line: line, Message: msg, Fix: fix})
}

// addFile reports a finding about another project file (path relative to the project root).
func (p *project) addFile(sev Severity, code, rel, msg, fix string) {
	p.findings = append(p.findings, Finding{Severity: sev, Code: code, File: filepath.Join(p.dir, rel), Message: msg, Fix: fix})
}

// get returns what Laravel's env(key) yields from the file, as a string: the last line wins
// and env()'s conversion applies (a quoted or "(empty)" value is unwrapped; null is absent).
func (p *project) get(key string) (string, int, bool) {
	if p.file == nil {
		return "", 0, false
	}
	v, line, ok := p.file.Get(key)
	if !ok {
		return "", line, false
	}
	lv := dotenv.LaravelValue(v)
	if lv.Kind == dotenv.Null {
		return "", line, false
	}
	return lv.String(), line, true
}

// val is get without the line; "" when absent.
func (p *project) val(key string) string {
	v, _, _ := p.get(key)
	return v
}

// line is the line of key's effective entry, 0 when absent.
func (p *project) line(key string) int {
	_, line, _ := p.get(key)
	return line
}

// has reports whether key is set to a non-empty value.
func (p *project) has(key string) bool {
	v, _, ok := p.get(key)
	return ok && v != ""
}

func (p *project) production() bool {
	return strings.EqualFold(p.val("APP_ENV"), "production")
}

// appHost is APP_URL's host name, "" when APP_URL is unset or not a URL.
func (p *project) appHost() string {
	u, err := url.Parse(p.val("APP_URL"))
	if err != nil || u.Host == "" {
		return ""
	}
	return u.Hostname()
}

// exists reports whether a project file exists (path relative to the project root).
func (p *project) exists(rel string) bool {
	_, err := os.Stat(filepath.Join(p.dir, rel))
	return err == nil
}

// frameworkVersion returns laravel/framework's version from composer.lock ("v11.9.2"), or "".
func (p *project) frameworkVersion() string {
	v, _ := p.lockedPackage("laravel/framework")
	return v
}

// lockedPackage returns a package's version from composer.lock ("packages", what production
// installs). known is false when there is no readable composer.lock to tell.
func (p *project) lockedPackage(name string) (version string, known bool) {
	data, err := os.ReadFile(filepath.Join(p.dir, "composer.lock"))
	if err != nil {
		return "", false
	}
	var lock struct {
		Packages []struct {
			Name    string `json:"name"`
			Version string `json:"version"`
		} `json:"packages"`
	}
	if json.Unmarshal(data, &lock) != nil {
		return "", false
	}
	for _, pkg := range lock.Packages {
		if pkg.Name == name {
			return pkg.Version, true
		}
	}
	return "", true
}

// majorVersion parses "v11.9.2" or "11.x-dev" to 11; 0 when unknown.
func majorVersion(v string) int {
	v = strings.TrimPrefix(v, "v")
	n, _ := strconv.Atoi(strings.SplitN(v, ".", 2)[0])
	return n
}

var envCallRE = regexp.MustCompile(`env\(\s*['"]([A-Z0-9_]+)['"]`)

// envKeysRead lists the env('...') names a config file reads; nil when the file is absent.
func (p *project) envKeysRead(rel string) map[string]bool {
	data, err := os.ReadFile(filepath.Join(p.dir, rel))
	if err != nil {
		return nil
	}
	keys := make(map[string]bool)
	for _, m := range envCallRE.FindAllSubmatch(data, -1) {
		keys[string(m[1])] = true
	}
	return keys
}

// isSecretKey says whether a variable's value must stay out of doctor's output (it may be
// pasted into an issue).
func isSecretKey(key string) bool {
	return strings.Contains(key, "SECRET") || strings.Contains(key, "PASSWORD")
}

// show renders a value for a message: quoted, secrets reduced to their length.
func show(key, v string) string {
	if isSecretKey(key) && v != "" {
		return fmt.Sprintf("(secret, %d characters)", len(v))
	}
	return strconv.Quote(v)
}

// isLoopback reports whether host only reaches the machine it is resolved on.
func isLoopback(host string) bool {
	h := strings.Trim(strings.ToLower(host), "[]")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && (ip.IsLoopback() || ip.IsUnspecified())
}

// randomToken is what reverb:install generates for keys and secrets: 20 lower-case letters and
// digits; doctor offers fresh ones in fixes.
func randomToken(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		k, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		if err != nil {
			panic(err) // crypto/rand never fails on Linux
		}
		b[i] = alphabet[k.Int64()]
	}
	return string(b)
}

// randomAppID is reverb:install's app id: a number from 100000 to 999999.
func randomAppID() string {
	k, err := rand.Int(rand.Reader, big.NewInt(900000))
	if err != nil {
		panic(err)
	}
	return strconv.FormatInt(100000+k.Int64(), 10)
}

// linesWord is "line 7" or "lines 3 and 8".
func linesWord(lines []int) string {
	if len(lines) == 1 {
		return "line " + joinLines(lines)
	}
	return "lines " + joinLines(lines)
}

// joinLines joins line numbers for messages: "3, 8 and 12".
func joinLines(lines []int) string {
	parts := make([]string, len(lines))
	for i, l := range lines {
		parts[i] = strconv.Itoa(l)
	}
	if len(parts) == 1 {
		return parts[0]
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}
