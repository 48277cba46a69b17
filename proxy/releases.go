package proxy

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
)

// Deploys that do not break open tabs.
//
// A page loaded before a deploy asks, later, for the JavaScript chunks of the build it came
// with (import() of app-BxK3o9aQ.js). After the `current` symlink moves (docroot.go) those
// files are gone from the new release's public/build/assets, and the tab fails with "Failed to
// fetch dynamically imported module". So when docRoot notices a switch, the release it leaves
// is remembered, and a request for a hashed build asset that the current release lacks is
// answered from it: from its directory while that still exists, else from a copy of its hashed
// files taken when the switch was noticed (an atomic deploy may delete the old directory).
//
// Only hashed assets are served this way, from PreviousReleases releases at most and for
// PreviousReleasesWindow after each was replaced: a file whose name carries a content hash
// never changes meaning, so serving an old one cannot show a tab anything but what it was
// built with. A hashed asset that no known release has is 404 at once, never PHP's to answer.

// hashedAsset reports whether rel (a cleaned path relative to the root) names a hashed build
// file: under buildDir, with a base name in which some "." is preceded by "-" and 8 characters
// of the base64url alphabet (A-Z a-z 0-9 _ -) — Rollup's and so Vite's default
// [name]-[hash].[ext] (Vite 5+: app-BxK3o9aQ.js; Vite 4's hex, index-4f3a2b1c.css, fits too),
// including what follows the extension: app-BxK3o9aQ.js.map, app-BxK3o9aQ.js.br.
func hashedAsset(rel, buildDir string) bool {
	if len(rel) <= len(buildDir) || rel[:len(buildDir)] != buildDir || rel[len(buildDir)] != '/' {
		return false
	}
	base := path.Base(rel)
	for i := 10; i < len(base); i++ {
		if base[i] != '.' || base[i-9] != '-' {
			continue
		}
		hash := true
		for _, c := range []byte(base[i-8 : i]) {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
				hash = false
				break
			}
		}
		if hash {
			return true
		}
	}
	return false
}

// oldRelease is one release that was current before.
type oldRelease struct {
	real    string    // its public/, symlinks resolved
	retired time.Time // when the switch away from it was noticed
	root    *os.Root  // opened at real when it was retired; fails once the directory is deleted
	copyDir string    // the copy of its hashed files, under releases.stateDir
	copy    *os.Root  // opened at copyDir once the copy is complete
	bytes   int64     // bytes of the copy, counted in releases.copied
	dropped bool      // pruned: a copy still running removes itself when done
}

// releases keeps the previous releases' hashed assets reachable.
type releases struct {
	buildDir  string // cleaned, slash-separated, relative to the root
	keep      int
	window    time.Duration
	copyLimit int64
	log       zerolog.Logger

	mu       sync.Mutex
	list     []*oldRelease // newest first
	copied   int64         // bytes held in copies
	stateDir string        // private directory of the copies, made on first use
	seq      int
	closed   bool
	full     bool // the copy limit was hit: logged once per switch

	served atomic.Int64
	copies sync.WaitGroup
	stop   chan struct{}
	done   chan struct{}
}

func newReleases(cfg Config, log zerolog.Logger) *releases {
	return &releases{
		buildDir:  path.Clean(filepath.ToSlash(cfg.BuildDir)),
		keep:      cfg.PreviousReleases,
		window:    cfg.PreviousReleasesWindow,
		copyLimit: cfg.PreviousReleasesCopyLimit,
		log:       log,
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
}

// watch resolves the root every rootRecheck even without traffic, so a switch is noticed (and
// the old release copied) before a deploy script gets around to deleting the old directory.
func (r *releases) watch(d *docRoot) {
	defer close(r.done)
	t := time.NewTicker(rootRecheck)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			d.get()
			r.mu.Lock()
			r.prune(time.Now())
			r.mu.Unlock()
		}
	}
}

// switched is docRoot's hook: the root moved from oldReal to newReal.
func (r *releases) switched(oldReal, newReal string) {
	root, err := os.OpenRoot(oldReal)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		if root != nil {
			root.Close()
		}
		return
	}
	// A rollback makes an old release current again: it is no longer a previous one.
	for i, o := range r.list {
		if o.real == newReal || o.real == oldReal {
			r.drop(o)
			r.list = append(r.list[:i:i], r.list[i+1:]...)
			break
		}
	}
	if err != nil {
		r.log.Warn().Err(err).Str("release", oldReal).Msg("deploy: the previous release is gone already; its hashed assets cannot be served to open tabs")
		return
	}
	o := &oldRelease{real: oldReal, retired: time.Now(), root: root}
	r.list = append([]*oldRelease{o}, r.list...)
	r.prune(o.retired)
	r.full = false
	r.log.Info().Str("previous", oldReal).Str("current", newReal).Dur("window", r.window).
		Msg("deploy: serving the previous release's hashed assets to tabs opened before the switch")
	r.copies.Add(1)
	go r.copyRelease(o)
}

// prune forgets releases beyond keep or older than window. Called with mu held.
func (r *releases) prune(now time.Time) {
	keep := r.list[:0]
	for i, o := range r.list {
		if i >= r.keep || now.Sub(o.retired) >= r.window {
			r.drop(o)
			continue
		}
		keep = append(keep, o)
	}
	clear(r.list[len(keep):])
	r.list = keep
}

// drop releases what o holds, or leaves its copy to remove itself when it is still running.
// Called with mu held.
func (r *releases) drop(o *oldRelease) {
	o.dropped = true
	o.root.Close()
	if o.copy != nil {
		o.copy.Close()
		os.RemoveAll(o.copyDir)
		r.copied -= o.bytes
		o.copy = nil
	}
}

// copyRelease copies o's hashed build files into the state directory, within copyLimit.
func (r *releases) copyRelease(o *oldRelease) {
	defer r.copies.Done()
	r.mu.Lock()
	if r.stateDir == "" {
		dir, err := os.MkdirTemp("", "frontdoor-releases-") // mode 0700: the app's files stay private
		if err != nil {
			r.mu.Unlock()
			r.log.Warn().Err(err).Msg("deploy: cannot create a directory for copies of previous releases")
			return
		}
		r.stateDir = dir
	}
	r.seq++
	dst := filepath.Join(r.stateDir, "r"+strconv.Itoa(r.seq))
	r.mu.Unlock()
	var bytes int64
	err := fs.WalkDir(o.root.FS(), r.buildDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == r.buildDir && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll // no build directory: nothing to keep
			}
			return err
		}
		// Symlinks are not followed (WalkDir reports them as such): only the release's own files.
		if !d.Type().IsRegular() || !hashedAsset(p, r.buildDir) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		if !r.reserve(o, info.Size()) {
			return nil
		}
		bytes += info.Size()
		return copyOut(o.root, p, filepath.Join(dst, filepath.FromSlash(p)))
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil && bytes > 0 && !o.dropped {
		o.copy, err = os.OpenRoot(dst)
	}
	if err != nil && !o.dropped {
		r.log.Warn().Err(err).Str("release", o.real).Msg("deploy: copying the previous release's hashed assets failed; they are served while its directory exists")
	}
	if o.copy == nil {
		os.RemoveAll(dst)
		r.copied -= o.bytes
		o.bytes = 0
		return
	}
	o.copyDir = dst
}

// reserve counts n more bytes of copies against copyLimit, or says the file is not copied.
func (r *releases) reserve(o *oldRelease, n int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if o.dropped || r.closed {
		return false
	}
	if r.copied+n > r.copyLimit {
		if !r.full {
			r.full = true
			r.log.Warn().Int64("limit_bytes", r.copyLimit).Str("release", o.real).
				Msg("deploy: copy limit for previous releases reached; the rest are served only while their directories exist")
		}
		return false
	}
	r.copied += n
	o.bytes += n
	return true
}

// copyOut copies rel under root to dst, creating its directories (private to this process).
func copyOut(root *os.Root, rel, dst string) error {
	in, err := root.Open(rel)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// serve answers a request for a hashed asset the current release does not have: from the
// newest previous release that has it, else 404. It always answers.
func (r *releases) serve(ctx *fasthttp.RequestCtx, h *Handler, rel string) {
	r.mu.Lock()
	r.prune(time.Now())
	var roots []*rootState
	for _, o := range r.list {
		roots = append(roots, &rootState{real: o.real, root: o.root})
		if o.copy != nil {
			roots = append(roots, &rootState{real: o.copyDir, root: o.copy})
		}
	}
	// The roots stay open while this request uses them: drop closes them only under mu, and
	// a closed os.Root fails the open (then the next root, or 404) rather than misbehave.
	for _, rs := range roots {
		if src, ok := openStatic(rs, rel); ok {
			r.mu.Unlock()
			r.served.Add(1)
			h.serveStatic(ctx, rs, rel, src)
			return
		}
	}
	r.mu.Unlock()
	h.errorPage(ctx, fasthttp.StatusNotFound, "Not Found")
}

// close stops the watcher, waits for copies in progress and removes them all.
func (r *releases) close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	r.mu.Unlock()
	close(r.stop)
	<-r.done
	r.copies.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, o := range r.list {
		r.drop(o)
	}
	r.list = nil
	if r.stateDir != "" {
		os.RemoveAll(r.stateDir)
	}
}

// PreviousReleaseAssetsServed counts hashed assets answered from a previous release (for the
// frontdoor_previous_release_assets_served_total metric).
func (h *Handler) PreviousReleaseAssetsServed() int64 {
	if h.releases == nil {
		return 0
	}
	return h.releases.served.Load()
}
