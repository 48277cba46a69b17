package proxy

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Config is the front door to PHP.
type Config struct {
	// Root is Laravel's public/ directory; files under it are served directly. Empty serves none.
	Root string
	// SymlinkRoots are directories outside Root that symlinks under Root may lead to and be
	// served from (absolute, or relative to Root); nil means Laravel's storage/app/public
	// (../storage/app/public), which `php artisan storage:link` links as public/storage.
	// Symlinks leading anywhere else are never followed.
	SymlinkRoots []string
	// FrontController is the only PHP file that runs (default index.php).
	FrontController string
	// Upstreams are where the app runs, balanced round-robin with passive health:
	// fastcgi://host:port or fastcgi:///path/to/php-fpm.sock (php-fpm, through the front
	// controller under Root; the pool learns how many connections php-fpm serves at once and
	// keeps that many, see pool; ?max_conns=N caps it at N instead, nothing learned), or
	// http://host:port (Octane, FrankenPHP, php artisan serve).
	// Empty means http://127.0.0.1:8000.
	Upstreams []string
	// MaxBody is the largest request body passed on (413 above it); zero means 64 MiB.
	MaxBody int64
	// ConnectTimeout, ReadTimeout and WriteTimeout bound an upstream exchange (502/504 beyond).
	// Zero means 5 s, 60 s and 60 s.
	ConnectTimeout, ReadTimeout, WriteTimeout time.Duration
	// BodyTimeout is the longest a client may stay silent while sending a request body
	// (Nginx's client_body_timeout): 408 beyond, and PHP never sees the request. Zero means 60 s.
	BodyTimeout time.Duration
	// BodyBufferLimit bounds the bytes of request bodies held at once, in memory and in
	// temporary files, while they are read before going upstream: 503 beyond. Zero means
	// 1 GiB or MaxBody, whichever is larger.
	BodyBufferLimit int64
	// StreamRequestBodies passes request bodies to HTTP upstreams as they arrive instead of
	// reading them first (Nginx's proxy_request_buffering off): for an upstream that handles
	// slow clients itself. php-fpm always gets whole bodies.
	StreamRequestBodies bool
	// Hosts are the names this site answers to (cmd/frontdoor passes the TLS --domain names).
	// When set, RefuseHost answers 421 to any other Host, and SERVER_NAME is the configured name
	// the request matched, else the first. Empty: any Host, and SERVER_NAME is the client's.
	Hosts []string
	// AllowAnyHost lets requests for names outside Hosts through (a catch-all site).
	AllowAnyHost bool
	// AccessLog writes one line per request.
	AccessLog bool
	// TrustedProxies are the balancers and CDNs whose forwarding headers are believed (client.go):
	// IP addresses, CIDRs, and the presets "cloudflare" and "private". Empty: frontdoor is the
	// edge and believes nobody.
	TrustedProxies []string
	// SendfileRoots are the directories PHP may hand files from with X-Sendfile (absolute
	// paths inside them) or X-Accel-Redirect ("/location/=dir" maps the URI prefix to dir);
	// relative dirs are taken from Root, e.g. ../storage/app. Setting any turns the feature on
	// and sends X-Sendfile-Type: X-Sendfile to PHP (sendfile.go).
	SendfileRoots []string
	// DisableCompression turns off response compression (compress.go); it is on by default,
	// as Caddy's encode and a typical Nginx gzip on.
	DisableCompression bool
	// CompressLevel is 1 (fastest) to 9 (smallest), gzip's scale; brotli takes the same number,
	// zstd the nearest of its four speeds. Zero means DefaultCompressLevel.
	CompressLevel int
	// BuildDir is Vite's output directory under Root (default "build", Laravel's public/build).
	// After a release switch, hashed files under it stay served from the previous releases
	// (releases.go); a hashed file no release has is 404, never PHP.
	BuildDir string
	// PreviousReleases is how many releases before the current one keep their hashed build
	// assets served; zero means 3, negative turns it off.
	PreviousReleases int
	// PreviousReleasesWindow is how long after a switch the release it replaced keeps serving
	// its hashed assets to tabs opened before it; zero means 1 h.
	PreviousReleasesWindow time.Duration
	// PreviousReleasesCopyLimit bounds the bytes of hashed assets copied, at switch time, out of
	// the previous releases (so they survive a deploy that deletes the old directory); zero
	// means 256 MiB. Files beyond it are served only while their release's directory exists.
	PreviousReleasesCopyLimit int64
	// AuthLaneShare is the share of a php-fpm pool's connections (max_conns, or the size the
	// pool learned) that /broadcasting/auth and /broadcasting/user-auth may use at once, so a
	// reconnect storm leaves the rest to pages (authlane.go); zero means 0.5, negative turns
	// it off.
	AuthLaneShare float64
	// AuthQueue bounds the authorizations waiting for the lane (503 beyond); zero means 4096.
	AuthQueue int
	// AuthQueueTimeout is the longest an authorization waits for the lane (503 beyond); zero
	// means 20 s.
	AuthQueueTimeout time.Duration
}

// DefaultUpstream is where `php artisan serve` and Octane listen by default.
const DefaultUpstream = "http://127.0.0.1:8000"

func (c Config) withDefaults() Config {
	if c.FrontController == "" {
		c.FrontController = "index.php"
	}
	if c.SymlinkRoots == nil {
		c.SymlinkRoots = []string{defaultSymlinkRoot}
	}
	if len(c.Upstreams) == 0 {
		c.Upstreams = []string{DefaultUpstream}
	}
	if c.MaxBody == 0 {
		c.MaxBody = 64 << 20
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = 5 * time.Second
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = 60 * time.Second
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 60 * time.Second
	}
	if c.BodyTimeout == 0 {
		c.BodyTimeout = 60 * time.Second
	}
	if c.BodyBufferLimit == 0 {
		c.BodyBufferLimit = max(1<<30, c.MaxBody)
	}
	if c.CompressLevel == 0 {
		c.CompressLevel = DefaultCompressLevel
	}
	if c.BuildDir == "" {
		c.BuildDir = "build"
	}
	if c.PreviousReleases == 0 {
		c.PreviousReleases = 3
	}
	if c.PreviousReleasesWindow == 0 {
		c.PreviousReleasesWindow = time.Hour
	}
	if c.PreviousReleasesCopyLimit == 0 {
		c.PreviousReleasesCopyLimit = 256 << 20
	}
	if c.AuthLaneShare == 0 {
		c.AuthLaneShare = 0.5
	}
	if c.AuthQueue == 0 {
		c.AuthQueue = 4096
	}
	if c.AuthQueueTimeout == 0 {
		c.AuthQueueTimeout = 20 * time.Second
	}
	return c
}

// Validate names the bad key and value.
func (c *Config) Validate() error {
	var errs []error
	if c.Root != "" {
		if st, err := os.Stat(c.Root); err != nil || !st.IsDir() {
			errs = append(errs, fmt.Errorf("root: %q is not a directory (point it at Laravel's public/)", c.Root))
		}
	}
	if strings.ContainsAny(c.FrontController, "/\\") {
		errs = append(errs, fmt.Errorf("front_controller: invalid value %q: a file name in root, e.g. index.php", c.FrontController))
	}
	for _, u := range c.Upstreams {
		p, err := url.Parse(u)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("upstream: invalid value %q: want http://host:port, fastcgi://host:port or fastcgi:///path/to/php-fpm.sock", u))
		case p.Scheme == "fastcgi" && p.Host == "" && (p.Path == "" || p.Path == "/"):
			errs = append(errs, fmt.Errorf("upstream: invalid value %q: want fastcgi://host:port or fastcgi:///path/to/php-fpm.sock", u))
		case p.Scheme == "fastcgi" && p.Host != "" && (p.Port() == "" || p.Path != "" && p.Path != "/"):
			errs = append(errs, fmt.Errorf("upstream: invalid value %q: a TCP FastCGI address needs host:port and no path, e.g. fastcgi://127.0.0.1:9000", u))
		case p.Scheme == "fastcgi" && !validFCGIQuery(p.Query()):
			errs = append(errs, fmt.Errorf("upstream: invalid value %q: the only option is ?max_conns=N (N ≥ 1, php-fpm's pm.max_children)", u))
		case p.Scheme == "fastcgi":
		case p.Scheme != "http":
			errs = append(errs, fmt.Errorf("upstream: invalid scheme in %q: want http://, or fastcgi:// for php-fpm", u))
		case p.Host == "":
			errs = append(errs, fmt.Errorf("upstream: invalid value %q: want http://host:port", u))
		}
	}
	for _, u := range c.Upstreams {
		if strings.HasPrefix(u, "fastcgi:") && c.Root == "" {
			errs = append(errs, fmt.Errorf("root: required with upstream %q: php-fpm runs the front controller from it (Laravel's public/)", u))
			break
		}
	}
	if c.MaxBody < 0 || c.ConnectTimeout < 0 || c.ReadTimeout < 0 || c.WriteTimeout < 0 || c.BodyTimeout < 0 {
		errs = append(errs, errors.New("max_body, body_timeout and the upstream timeouts: must be ≥ 0"))
	}
	if c.BodyBufferLimit != 0 && c.BodyBufferLimit < c.MaxBody {
		errs = append(errs, fmt.Errorf("body_buffer_limit: invalid value %d: must be at least max_body (%d), or one largest body could never be read", c.BodyBufferLimit, c.MaxBody))
	}
	for _, v := range c.SendfileRoots {
		if _, _, err := parseSendfileRoot(v, c.Root); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := ParseTrustedProxies(c.TrustedProxies); err != nil {
		errs = append(errs, err)
	}
	if c.CompressLevel < 0 || c.CompressLevel > 9 {
		errs = append(errs, fmt.Errorf("compress_level: invalid value %d: want 1 (fastest) to 9 (smallest)", c.CompressLevel))
	}
	if c.BuildDir != "" && !filepath.IsLocal(c.BuildDir) {
		errs = append(errs, fmt.Errorf("build_dir: invalid value %q: a directory relative to root, e.g. build", c.BuildDir))
	}
	if c.AuthLaneShare > 1 || c.AuthQueue < 0 || c.AuthQueueTimeout < 0 {
		errs = append(errs, fmt.Errorf("auth_lane_share, auth_queue, auth_queue_timeout: invalid values %v, %d, %s: the share is at most 1, the others ≥ 0", c.AuthLaneShare, c.AuthQueue, c.AuthQueueTimeout))
	}
	if c.PreviousReleasesWindow < 0 || c.PreviousReleasesCopyLimit < 0 {
		errs = append(errs, errors.New("previous_releases_window and previous_releases_copy_limit: must be ≥ 0"))
	}
	return errors.Join(errs...)
}

func validFCGIQuery(q url.Values) bool {
	for k, v := range q {
		if k != "max_conns" || len(v) != 1 {
			return false
		}
		if n, err := strconv.Atoi(v[0]); err != nil || n < 1 {
			return false
		}
	}
	return true
}
