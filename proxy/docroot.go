package proxy

import (
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
	path    string // as configured: DOCUMENT_ROOT
	cur     atomic.Pointer[rootState]
	refresh sync.Mutex
}

// rootState is one resolution of the root.
type rootState struct {
	real    string   // symlinks resolved
	root    *os.Root // opened at real: static files never leave it
	checked time.Time
	files   *fileCache // what root holds, for the static path; new with each new root
}

func openDocRoot(path string) (*docRoot, error) {
	d := &docRoot{path: path}
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
	return &rootState{real: real, root: r, checked: time.Now(), files: &fileCache{}}, nil
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
		d.cur.Store(&rootState{real: st.real, root: st.root, checked: time.Now(), files: st.files})
		return d.cur.Load()
	}
	next, err := d.open()
	if err != nil {
		return st
	}
	d.cur.Store(next)
	// Requests may still be opening files through the old root: close it a little later.
	time.AfterFunc(10*time.Second, func() { st.root.Close() })
	return next
}

func (d *docRoot) close() {
	if st := d.cur.Load(); st != nil {
		st.root.Close()
	}
}
