package proxy

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// rootRecheck is how often the document root's symlinks are resolved again.
const rootRecheck = time.Second

// docRoot is Laravel's public/ as a deploy sees it. Zero-downtime deploys (Envoyer, Deployer)
// swap a symlink (current -> releases/N); Nginx's Laravel block follows it on every request
// through $realpath_root. Here the resolved path is checked again at most once a second, and
// static files and SCRIPT_FILENAME then come from the new release. SCRIPT_FILENAME uses the
// resolved path so OPcache, which caches by path, never runs the old release's code.
type docRoot struct {
	path     string   // as configured: DOCUMENT_ROOT
	linkDirs []string // Config.SymlinkRoots, absolute
	cur      atomic.Pointer[rootState]
	refresh  sync.Mutex
	// switched, when set, learns of each release switch (releases.go keeps the old one's assets).
	switched func(oldReal, newReal string)
}

// rootState is one resolution of the root.
type rootState struct {
	real    string   // symlinks resolved
	root    *os.Root // opened at real: static files never leave it
	links   []linkRoot
	checked time.Time
	files   *fileCache // what root holds, for the static path; new with each new root
}

// linkRoot is a directory outside the root that symlinks under the root may lead into:
// Laravel's storage/app/public, which `php artisan storage:link` links as public/storage.
type linkRoot struct {
	real string   // symlinks resolved
	root *os.Root // opened at real: what a symlink leads to is opened through it
}

// defaultSymlinkRoot is where `php artisan storage:link` points public/storage, relative to
// public/.
var defaultSymlinkRoot = filepath.Join("..", "storage", "app", "public")

func openDocRoot(path string, linkDirs []string) (*docRoot, error) {
	d := &docRoot{path: path}
	for _, l := range linkDirs {
		if !filepath.IsAbs(l) {
			l = filepath.Join(path, l) // lexically: ../storage is beside the configured public/
		}
		d.linkDirs = append(d.linkDirs, l)
	}
	st, err := d.open()
	if err != nil {
		return nil, err
	}
	d.cur.Store(st)
	return d, nil
}

func (d *docRoot) open() (*rootState, error) {
	real, err := filepath.EvalSymlinks(d.path)
	if err != nil {
		return nil, err
	}
	r, err := os.OpenRoot(real)
	if err != nil {
		return nil, err
	}
	st := &rootState{real: real, root: r, checked: time.Now(), files: &fileCache{}}
	for _, l := range d.linkDirs {
		// Resolved again with each root: a deploy's release has its own storage link.
		lr, err := filepath.EvalSymlinks(l)
		if err != nil {
			continue // no storage directory (yet): nothing to follow into
		}
		if root, err := os.OpenRoot(lr); err == nil {
			st.links = append(st.links, linkRoot{real: lr, root: root})
		}
	}
	return st, nil
}

// Open opens rel under the root. A symlink on the way that leaves the root is followed only
// when all of rel resolves to a path inside one of the link roots, and then the file is opened
// through that root's os.Root, so a link swapped between the check and the open still cannot
// lead outside it. A link to /etc, or to the app's .env, is refused like any escape.
func (rs *rootState) Open(rel string) (*os.File, error) {
	f, err := rs.root.Open(rel)
	if err == nil || len(rs.links) == 0 || errors.Is(err, fs.ErrNotExist) {
		return f, err
	}
	if l, r, ok := rs.linked(rel); ok {
		return l.root.Open(r)
	}
	return nil, err
}

// Stat is Open's stat (the file cache revalidates with it).
func (rs *rootState) Stat(rel string) (fs.FileInfo, error) {
	st, err := rs.root.Stat(rel)
	if err == nil || len(rs.links) == 0 || errors.Is(err, fs.ErrNotExist) {
		return st, err
	}
	if l, r, ok := rs.linked(rel); ok {
		return l.root.Stat(r)
	}
	return nil, err
}

// linked resolves rel's symlinks and returns the link root it lands in with the path relative
// to it. What it lands on must pass the same rules as a request path (no dotfiles, no PHP).
func (rs *rootState) linked(rel string) (linkRoot, string, bool) {
	target, err := filepath.EvalSymlinks(filepath.Join(rs.real, rel))
	if err != nil {
		return linkRoot{}, "", false
	}
	for _, l := range rs.links {
		r, err := filepath.Rel(l.real, target)
		if err != nil || !filepath.IsLocal(r) {
			continue
		}
		if hasDotSegment("/"+filepath.ToSlash(r)) || hasSuffixFold(r, ".php") {
			return linkRoot{}, "", false
		}
		return l, r, true
	}
	return linkRoot{}, "", false
}

func (rs *rootState) close() {
	rs.root.Close()
	for _, l := range rs.links {
		l.root.Close()
	}
}

// get returns the current resolution, resolving again when it is over rootRecheck old. One
// request does that while the others keep using the previous state.
func (d *docRoot) get() *rootState {
	st := d.cur.Load()
	if time.Since(st.checked) < rootRecheck || !d.refresh.TryLock() {
		return st
	}
	defer d.refresh.Unlock()
	st = d.cur.Load()
	real, err := filepath.EvalSymlinks(d.path)
	if err != nil || real == st.real {
		// Unchanged, or gone mid-deploy: keep what we have and look again later.
		d.cur.Store(&rootState{real: st.real, root: st.root, links: st.links, checked: time.Now(), files: st.files})
		return d.cur.Load()
	}
	next, err := d.open()
	if err != nil {
		return st
	}
	d.cur.Store(next)
	if d.switched != nil {
		d.switched(st.real, next.real)
	}
	// Requests may still be opening files through the old root: close it a little later.
	time.AfterFunc(10*time.Second, st.close)
	return next
}

func (d *docRoot) close() {
	if st := d.cur.Load(); st != nil {
		st.close()
	}
}
