package ws

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"reflect"
	"sync"
	"sync/atomic"
	"unsafe"
)

// fasthttp hands a hijack handler its *hijackConn, which reads through the connection's
// bufio.Reader of Server.ReadBufferSize (16 KiB in frontdoor, the header limit). With
// KeepHijackedConns and StreamRequestBody (both needed by frontdoor) fasthttp never returns that
// reader to its pool: every upgrade allocated 16 KiB that Adopt drained and dropped at once, and
// that garbage set how often the GC ran under connection churn (about 30 % of the server's
// instructions; docs/benchmarks.md "Churn by instruction count"). fasthttp has no API to give
// the reader back (up to v1.79.0), so reclaimReader does what its serveConn would do for a
// request without a body: copy out what is buffered, point the hijacked conn at the socket and
// put the reader into the server's pool. It finds the three fields (hijackConn.r, hijackConn.s,
// Server.readerPool) by name and type once; if a fasthttp release changes them, it finds
// nothing, Adopt drains the reader as before (drainBuffered) and TestUpgradeGarbage fails.

// hijackLayout is where the fields reclaimReader needs sit, for one hijacked conn type.
type hijackLayout struct {
	typ  reflect.Type // *fasthttp.hijackConn
	r    uintptr      // offset of hijackConn.r, an io.Reader: the *bufio.Reader
	s    uintptr      // offset of hijackConn.s, the *fasthttp.Server
	pool uintptr      // offset of Server.readerPool, a sync.Pool of *bufio.Reader
	ok   bool         // false: the type does not look as expected; do not touch it
}

var lastLayout atomic.Pointer[hijackLayout]

const fasthttpPkg = "github.com/valyala/fasthttp"

// layoutOf finds the fields in t, or returns a layout with ok false.
func layoutOf(t reflect.Type) *hijackLayout {
	if l := lastLayout.Load(); l != nil && l.typ == t {
		return l
	}
	l := &hijackLayout{typ: t}
	defer lastLayout.Store(l)
	if t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct ||
		t.Elem().PkgPath() != fasthttpPkg || t.Elem().Name() != "hijackConn" {
		return l
	}
	r, okR := direct(t.Elem(), "r")
	s, okS := direct(t.Elem(), "s")
	if !okR || !okS || r.Type != reflect.TypeFor[io.Reader]() || s.Type.Kind() != reflect.Pointer {
		return l
	}
	srv := s.Type.Elem()
	if srv.Kind() != reflect.Struct || srv.PkgPath() != fasthttpPkg || srv.Name() != "Server" {
		return l
	}
	pool, okP := direct(srv, "readerPool")
	if !okP || pool.Type != reflect.TypeFor[sync.Pool]() {
		return l
	}
	l.r, l.s, l.pool, l.ok = r.Offset, s.Offset, pool.Offset, true
	return l
}

// direct is t's own (not promoted) field called name.
func direct(t reflect.Type, name string) (reflect.StructField, bool) {
	f, ok := t.FieldByName(name)
	return f, ok && len(f.Index) == 1
}

// reclaimReader returns what fasthttp's reader of hj buffered beyond the upgrade request and
// gives the reader back to fasthttp's pool, with hj reading raw from then on. The caller
// guarantees that nothing else reads the reader: no request body stream holds it. ok is false
// when hj is not a fasthttp hijacked conn whose layout is known; hj is then untouched.
func reclaimReader(hj hijacked, raw net.Conn) (pending []byte, ok bool) {
	v := reflect.ValueOf(hj)
	l := layoutOf(v.Type())
	if !l.ok {
		return nil, false
	}
	base := v.UnsafePointer()
	rp := (*io.Reader)(unsafe.Add(base, l.r))
	br, isBuf := (*rp).(*bufio.Reader)
	srv := *(*unsafe.Pointer)(unsafe.Add(base, l.s))
	if !isBuf || srv == nil {
		return nil, false
	}
	if n := br.Buffered(); n > 0 {
		b, _ := br.Peek(n)
		pending = bytes.Clone(b)
	}
	// A stray Read on hj now reads the socket, never a reader another connection owns.
	*rp = raw
	br.Reset(nil) // the pool must not keep this conn alive; fasthttp resets it on reuse
	(*sync.Pool)(unsafe.Add(srv, l.pool)).Put(br)
	return pending, true
}
