package bench

import "fmt"

// Pinning (--pin): on one machine the load generator and the server compete for the same cores,
// and the scheduler moves both around, so a cycle's cost includes migrations and cache misses
// that neither would pay on its own machine. With --pin the client runs on CPU 0 and the server's
// processes on CPU 1, which makes the per-server-CPU figures steadier and the wall-clock rate the
// rate one server core sustains against one client core.
const (
	pinClientCPU = 0
	pinServerCPU = 1
)

// Pin modes, the values of --pin.
const (
	PinOff  = "off"  // the scheduler places both (the default)
	PinOn   = "on"   // every scenario pinned
	PinBoth = "both" // every scenario twice: unpinned, then pinned (name + "-pinned")
)

func validPin(mode string) error {
	switch mode {
	case "", PinOff, PinOn, PinBoth:
		return nil
	}
	return fmt.Errorf("pin: invalid value %q: want off, on or both", mode)
}
