package proxy

import (
	"errors"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// fileCache is Nginx's open_file_cache, done for the files a Laravel page pulls in: small static
// files are answered from memory, and paths that are not files (every request PHP answers) are
// remembered as such, so neither costs the open/fstat/close (and, for the precompressed .br/.gz
// siblings, the failed opens) that dominated the static path's CPU profile. Entries are checked
// against the file with one stat at most every fileRecheck, so an edited or new file is served
// within a second, as after a deploy's symlink swap (docroot.go), which starts a new cache.
type fileCache struct {
	m       sync.Map // relative path → *cachedFile
	entries atomic.Int64
	bytes   atomic.Int64
}

// Bounds: what is cached is a few thousand assets, not the disk. Beyond them, files are opened
// per request as before, and unknown paths are not remembered (a scanner cannot grow the map).
const (
	smallFileMax   = 64 << 10
	cacheMaxBytes  = 64 << 20
	cacheMaxPaths  = 20000
	fileRecheckDur = time.Second
)

// fileRecheck is a variable so the tests can shorten it.
var fileRecheck = fileRecheckDur

// cachedFile is what a path held when last looked at.
type cachedFile struct {
	kind    fileKind
	body    []byte // kind == smallFile
	size    int64
	mod     time.Time
	checked atomic.Int64 // Unix ns of the last stat
}

type fileKind uint8

const (
	noFile    fileKind = iota // absent, a directory, or not regular: not static
	smallFile                 // in body
	largeFile                 // regular, too large to keep: open it per request
)

// fileRoot is where the cache opens files: an os.Root, or a rootState, which also follows
// symlinks into its link roots.
type fileRoot interface {
	Open(name string) (*os.File, error)
	Stat(name string) (fs.FileInfo, error)
}

// lookup returns what rel is under root, loading or revalidating it when needed.
func (c *fileCache) lookup(root fileRoot, rel string) *cachedFile {
	now := time.Now().UnixNano()
	if v, ok := c.m.Load(rel); ok {
		cf := v.(*cachedFile)
		if now-cf.checked.Load() < int64(fileRecheck) {
			return cf
		}
		st, err := root.Stat(rel)
		if unchanged(cf, st, err) {
			cf.checked.Store(now)
			return cf
		}
	}
	cf := load(root, rel)
	cf.checked.Store(now)
	c.store(rel, cf)
	return cf
}

func unchanged(cf *cachedFile, st fs.FileInfo, err error) bool {
	if err != nil || !st.Mode().IsRegular() {
		return cf.kind == noFile && (err == nil || errors.Is(err, fs.ErrNotExist))
	}
	return cf.kind != noFile && st.Size() == cf.size && st.ModTime().Equal(cf.mod)
}

func load(root fileRoot, rel string) *cachedFile {
	f, err := root.Open(rel)
	if err != nil {
		return &cachedFile{kind: noFile}
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return &cachedFile{kind: noFile}
	}
	cf := &cachedFile{kind: largeFile, size: st.Size(), mod: st.ModTime()}
	if st.Size() <= smallFileMax {
		body := make([]byte, st.Size())
		if n, err := f.ReadAt(body, 0); err == nil || n == len(body) {
			cf.kind, cf.body = smallFile, body
		}
	}
	return cf
}

// store keeps cf unless the cache is full; a replaced entry's bytes are given back.
func (c *fileCache) store(rel string, cf *cachedFile) {
	if old, ok := c.m.Load(rel); ok {
		c.bytes.Add(int64(len(cf.body) - len(old.(*cachedFile).body)))
		c.m.Store(rel, cf)
		return
	}
	if c.entries.Load() >= cacheMaxPaths || c.bytes.Load()+int64(len(cf.body)) > cacheMaxBytes {
		return
	}
	if _, loaded := c.m.LoadOrStore(rel, cf); !loaded {
		c.entries.Add(1)
		c.bytes.Add(int64(len(cf.body)))
	}
}
