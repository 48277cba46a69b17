package bench

import (
	"os"
	"strings"
	"testing"
)

func TestReadProcSelf(t *testing.T) {
	u, err := readProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if u.rss < 1<<20 || u.cpu < 0 {
		t.Fatalf("implausible own usage: %+v", u)
	}
	if _, err := readProcs([]int{os.Getpid(), 1 << 30}); err == nil {
		t.Fatal("a missing process read without error")
	}
	if procNoFile(os.Getpid()) == "" || !strings.Contains(procCommand(os.Getpid()), "bench") {
		t.Fatalf("limits %q command %q", procNoFile(os.Getpid()), procCommand(os.Getpid()))
	}
	if raiseNoFile() == 0 {
		t.Fatal("no open-file limit read")
	}
}

func TestCheckMemberList(t *testing.T) {
	ok := `{"presence":{"ids":["observer-0","u-1"],"hash":{"observer-0":{"bench":true},"u-1":null},"count":2}}`
	if err := checkMemberList(ok, "u-1", "observer-0"); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{
		"count off":        `{"presence":{"ids":["observer-0","u-1"],"hash":{"observer-0":{},"u-1":{}},"count":3}}`,
		"hash short":       `{"presence":{"ids":["observer-0","u-1"],"hash":{"u-1":{}},"count":2}}`,
		"joiner missing":   `{"presence":{"ids":["observer-0"],"hash":{"observer-0":{}},"count":1}}`,
		"observer missing": `{"presence":{"ids":["u-1"],"hash":{"u-1":{}},"count":1}}`,
		"not json":         `{`,
	} {
		if err := checkMemberList(data, "u-1", "observer-0"); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
