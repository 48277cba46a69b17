package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMainUsageErrors(t *testing.T) {
	dir := t.TempDir()
	env := filepath.Join(dir, ".env")
	if err := os.WriteFile(env, []byte("REVERB_APP_ID=1\nREVERB_APP_KEY=k\nREVERB_HOST=127.0.0.1\nREVERB_PORT=1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"nope"}, 2, `unknown scenario "nope"`},
		{[]string{"fanout", "--url", "http://127.0.0.1:1", "--app-id", "1", "--key", "k", "--secret", "s"}, 2, "url:"},
		{[]string{"fanout", "--env-file", env}, 2, "secret: required"},
		{[]string{"fanout", "--env-file", filepath.Join(dir, "missing")}, 2, "env-file:"},
		{[]string{"publish", "--url", "ws://127.0.0.1:1", "--app-id", "1", "--key", "k", "--secret", "s", "--size", "5", "--server-pid", "none"}, 1, "size: 5"},
		{[]string{"compare"}, 2, "give one or more JSON reports"},
		{[]string{"fanout", "extra"}, 2, `unexpected argument "extra"`},
	} {
		var out, errOut bytes.Buffer
		code := Main(tt.args, &out, &errOut)
		if code != tt.code || !strings.Contains(errOut.String(), tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tt.args, code, errOut.String(), tt.code, tt.want)
		}
	}
	var out bytes.Buffer
	if code := Main([]string{"help"}, &out, &out); code != 0 || !strings.Contains(out.String(), "-subscribers") {
		t.Errorf("help: exit %d\n%s", code, out.String())
	}
}
