package pusher

import (
	"fmt"
	"testing"
)

// subSet behaves as a map through the move from slice to map and back down to empty.
func TestSubSet(t *testing.T) {
	var ss subSet
	ref := map[string]string{}
	check := func(step string) {
		t.Helper()
		if ss.len() != len(ref) {
			t.Fatalf("%s: len %d, want %d", step, ss.len(), len(ref))
		}
		for name, uid := range ref {
			if got, ok := ss.get(name); !ok || got != uid {
				t.Fatalf("%s: get(%q) = %q, %v; want %q", step, name, got, ok, uid)
			}
		}
		seen := 0
		ss.each(func(name, uid string) bool {
			if ref[name] != uid {
				t.Fatalf("%s: each gave %q=%q, want %q", step, name, uid, ref[name])
			}
			seen++
			return true
		})
		if seen != len(ref) {
			t.Fatalf("%s: each visited %d, want %d", step, seen, len(ref))
		}
		if _, ok := ss.get("absent"); ok {
			t.Fatalf("%s: found a channel never added", step)
		}
	}
	for i := range 3 * subSetSmall {
		name := fmt.Sprintf("presence-%d", i)
		ss.set(name, fmt.Sprint("u", i))
		ref[name] = fmt.Sprint("u", i)
		check("add " + name)
		if i == 1 {
			ss.set(name, "again") // re-set replaces, does not duplicate
			ref[name] = "again"
			check("reset " + name)
		}
	}
	if ss.big == nil {
		t.Fatal("still a slice past subSetSmall")
	}
	for i := 3*subSetSmall - 1; i >= 0; i-- {
		name := fmt.Sprintf("presence-%d", i)
		uid, ok := ss.remove(name)
		if !ok || uid != ref[name] {
			t.Fatalf("remove(%q) = %q, %v; want %q", name, uid, ok, ref[name])
		}
		delete(ref, name)
		check("remove " + name)
		if _, ok := ss.remove(name); ok {
			t.Fatalf("removed %q twice", name)
		}
	}

	// The small form: removing from the middle keeps the others.
	var s2 subSet
	for _, n := range []string{"a", "b", "c"} {
		s2.set(n, "")
	}
	s2.remove("a")
	if _, ok := s2.get("c"); !ok || s2.len() != 2 {
		t.Fatalf("after removing a: %+v", s2.small)
	}
	stopped := 0
	s2.each(func(string, string) bool { stopped++; return false })
	if stopped != 1 {
		t.Fatalf("each went on after false: %d calls", stopped)
	}
}
