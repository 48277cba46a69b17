//go:build linux && !portable && !race

package proxy

import "testing"

// TestRawIOConnAllocs: upstream connections on Linux are rawIOConns, and a read or a write
// allocates nothing (the poller callbacks are bound once per connection).
func TestRawIOConnAllocs(t *testing.T) {
	c, s := rawIOPair(t)
	if _, ok := c.(*rawIOConn); !ok {
		t.Fatalf("rawIO gave %T", c)
	}
	one, back := []byte{'x'}, make([]byte, 1)
	n := testing.AllocsPerRun(200, func() {
		if _, err := c.Write(one); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Read(back); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Write(one); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(back); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Errorf("%.1f allocations per write and read, want 0", n)
	}
}
