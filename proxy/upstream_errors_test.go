package proxy

import (
	"errors"
	"fmt"
	"net"
	"os"
	"testing"
)

// An exchange's error says what went wrong and whose fault it was: the kind decided where it
// failed wins (a refused dial is kindConnect), else the cause's kind, through any wrapping.
func TestKindOf(t *testing.T) {
	timeout := &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}
	for _, c := range []struct {
		err  error
		want failKind
	}{
		{failed(kindConnect, errors.New("connection refused")), kindConnect},
		{fmt.Errorf("attempt 2: %w", failed(kindAuthBusy, errors.New("lane full"))), kindAuthBusy},
		{timeout, kindTimeout},
		{clientError{timeout}, kindSlow},
		{clientError{errors.New("unexpected EOF")}, kindClient},
		{fmt.Errorf("copy: %w", errBodyTooLarge), kindTooLarge},
		{errBodyBudget, kindBusy},
		{errors.New("fastcgi: response ended before its headers"), kindProtocol},
	} {
		if got := kindOf(c.err); got != c.want {
			t.Errorf("kindOf(%v) = %s, want %s", c.err, got, c.want)
		}
	}
	if e := failed(kindTimeout, os.ErrDeadlineExceeded); !errors.Is(e, os.ErrDeadlineExceeded) {
		t.Error("failed() hides its cause from errors.Is")
	}
}
