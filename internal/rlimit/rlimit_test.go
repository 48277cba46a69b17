package rlimit

import (
	"errors"
	"testing"
)

// The limits read back as set: frontdoor raises its soft limit to the hard one at start-up.
func TestNoFileRoundTrip(t *testing.T) {
	cur, hard, err := NoFile()
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if cur == 0 || cur > hard {
		t.Fatalf("soft %d, hard %d", cur, hard)
	}
	lower := cur - 1
	if err := SetNoFile(lower, hard); err != nil {
		t.Fatal(err)
	}
	defer SetNoFile(cur, hard)
	if got, gotHard, err := NoFile(); err != nil || got != lower || gotHard != hard {
		t.Fatalf("after SetNoFile(%d, %d): %d, %d, %v", lower, hard, got, gotHard, err)
	}
}
