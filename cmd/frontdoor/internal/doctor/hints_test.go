package doctor

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var secretName = regexp.MustCompile(`[A-Z0-9]_SECRET\b`)

// leaksSecret is a text telling a user to put an app secret where the browser gets it.
func leaksSecret(text string) bool {
	return secretName.MatchString(text) && (strings.Contains(text, "VITE_") || strings.Contains(strings.ToLower(text), "browser"))
}

// A hint that puts REVERB_APP_SECRET next to the browser bundle invites publishing it: anyone with
// the secret can publish to every channel and sign any private subscription (issue #20: the
// credentials fix said "the server, the broadcaster and the browser bundle must all use the same").
// Every finding every fixture raises is checked, and every string literal of the package's code,
// so a hint no fixture reaches is covered too.
func TestNoHintSendsASecretToTheBrowser(t *testing.T) {
	fixtures, err := os.ReadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	for _, fx := range fixtures {
		rep := checkFixture(t, copyFixture(t, fx.Name()), noEnv)
		for _, f := range rep.Findings {
			for _, text := range []string{f.Message, f.Fix} {
				if leaksSecret(text) {
					t.Errorf("%s: %s names a secret with the browser bundle: %q", fx.Name(), f.Code, text)
				}
			}
		}
	}
	files, _ := filepath.Glob("*.go")
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			if s, err := strconv.Unquote(lit.Value); err == nil && leaksSecret(s) {
				t.Errorf("%s: a hint names a secret with the browser bundle: %q", fset.Position(lit.Pos()), s)
			}
			return true
		})
	}
}
