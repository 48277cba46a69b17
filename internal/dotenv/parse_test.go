package dotenv

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func parseString(t *testing.T, src string, env map[string]string) (*File, error) {
	t.Helper()
	var lookup func(string) (string, bool)
	if env != nil {
		lookup = func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	}
	return Parse(".env", strings.NewReader(src), lookup)
}

// TestParseValues pins phpdotenv's results; most cases are the expectations of phpdotenv's own
// tests (tests/Dotenv/DotenvTest.php, Parser/EntryParserTest.php) for its fixture files.
func TestParseValues(t *testing.T) {
	tests := []struct {
		name string
		src  string
		env  map[string]string
		key  string
		want string
	}{
		{"plain", "FOO=bar", nil, "FOO", "bar"},
		{"spaces around equals", "QWHITESPACE = \"no space\"", nil, "QWHITESPACE", "no space"},
		{"export prefix", "export FOO=bar", nil, "FOO", "bar"},
		{"export tab quoted name", "export\t\"FOO\"='bar baz'", nil, "FOO", "bar baz"},
		{"export many spaces", "export    ENULL=\"\"", nil, "ENULL", ""},
		{"quoted names", "export 'ESQUOTED' = 456", nil, "ESQUOTED", "456"},
		{"empty", "FOO=", nil, "FOO", ""},
		{"empty with comment", "EMPTY= # comment", nil, "EMPTY", ""},
		{"empty with comment no space", "EMPTY2=# comment", nil, "EMPTY2", ""},
		{"comment without space after unquoted", "FOOO=foo# comment", nil, "FOOO", "foo"},
		{"hash in unquoted", "SPVAR6=secret!@#", nil, "SPVAR6", "secret!@"},
		{"hash in single quotes", "SPVAR7='secret!@#'", nil, "SPVAR7", "secret!@#"},
		{"hash in double quotes", `CQUOTES="a value with a # character" # this is a comment`, nil, "CQUOTES", "a value with a # character"},
		{"escaped quote and comment", `C="a # c & a quote \" inside" # " comment`, nil, "C", `a # c & a quote " inside`},
		{"comment after unquoted", "BOOLEAN=yes # (yes, no)", nil, "BOOLEAN", "yes"},
		{"double escapes", `QESCAPED="quote (\") or backslash (\\)"`, nil, "QESCAPED", `quote (") or backslash (\)`},
		{"escaped backslash then n", `QSLASH="iiii\\n"`, nil, "QSLASH", `iiii\n`},
		{"single keeps backslashes", `SQSLASH='iiii\\n'`, nil, "SQSLASH", `iiii\\n`},
		{"newline escape", `FOO="\n"`, nil, "FOO", "\n"},
		{"tab escape", `FOO="\t"`, nil, "FOO", "\t"},
		{"escapes glued to text", `TEST_ND="test\ntest"`, nil, "TEST_ND", "test\ntest"},
		{"single quote no escapes", `TEST_NS='test\ntest'`, nil, "TEST_NS", `test\ntest`},
		{"unquoted backslashes literal", `FOO=\n\v`, nil, "FOO", `\n\v`},
		{"unquoted quote literal", `FOO=a"b`, nil, "FOO", `a"b`},
		{"equals in value", `QEQUALS="pgsql:host=localhost;dbname=test"`, nil, "QEQUALS", "pgsql:host=localhost;dbname=test"},
		{"trailing equals", `TEST_EQD="https://x/?key="`, nil, "TEST_EQD", "https://x/?key="},
		{"special chars", `SPVAR3="jdgEB4{QgEC]HL))&GcXxokB+wqoN+j>xkV7K?m$r"`, nil, "SPVAR3", "jdgEB4{QgEC]HL))&GcXxokB+wqoN+j>xkV7K?m$r"},
		{"dollar not braced", `SPVAR1="$a6^C7k%zs+e^.jvjXk"`, nil, "SPVAR1", "$a6^C7k%zs+e^.jvjXk"},
		{"unicode name", "FOOƱ=BAZ", nil, "FOOƱ", "BAZ"},
		{"dotted name", `N.VAR6="Special Value"`, nil, "N.VAR6", "Special Value"},
		{"multibyte value", "MB2=行内支付", nil, "MB2", "行内支付"},
		{"crlf", "A=1\r\nFOO=bar\r\n", nil, "FOO", "bar"},
		{"cr only", "A=1\rFOO=bar\r", nil, "FOO", "bar"},
		{"bom", "\xEF\xBB\xBFFOO=bar", nil, "FOO", "bar"},
		{"invalid utf8 becomes ?", "FOO=a\xffb", nil, "FOO", "a?b"},
		{"multi-line", "TEST=\"test\n     test\\\"test\\\"\n     test\"\n", nil, "TEST", "test\n     test\"test\"\n     test"},
		{"multi-line lone quote", "K=\"line1\nline2\n\"", nil, "K", "line1\nline2\n"},
		{"multi-line crlf", "K=\"a\r\nb\"\r\n", nil, "K", "a\nb"},

		// Interpolation (nested.env and the repository order).
		{"braced interpolation", "NVAR1=\"Hellō\"\nNVAR2=\"World!\"\nNVAR4=\"${NVAR1} ${NVAR2}\"", nil, "NVAR4", "Hellō World!"},
		{"unbraced not resolved", "NVAR1=x\nNVAR5=\"$NVAR1 {NVAR2}\"", nil, "NVAR5", "$NVAR1 {NVAR2}"},
		{"brace after dollar not resolved", "NVAR1=x\nNVAR3=\"{$NVAR1}\"", nil, "NVAR3", "{$NVAR1}"},
		{"dotted reference", "N.VAR6=\"Special Value\"\nNVAR7=\"${N.VAR6}\"", nil, "NVAR7", "Special Value"},
		{"empty reference", "NVAR8=\"\"\nNVAR9=\"${NVAR8}\"", nil, "NVAR9", ""},
		{"unknown reference kept", `NVAR10="${NVAR888}"`, nil, "NVAR10", "${NVAR888}"},
		{"nested reference", "NVAR1=Hellō\nNVAR11=\"NVAR1\"\nNVAR12=\"${${NVAR11}}\"", nil, "NVAR12", "Hellō"},
		{"single quotes no interpolation", "NVAR1=x\nNVAR13='${NVAR1}'", nil, "NVAR13", "${NVAR1}"},
		{"escaped dollar", "NVAR1=x\nNVAR15=\"\\${NVAR1} \\${NVAR1}\"", nil, "NVAR15", "${NVAR1} ${NVAR1}"},
		{"unquoted interpolation", "H=example.com\nURL=https://${H}/x", nil, "URL", "https://example.com/x"},
		{"later line does not count", "VITE_REVERB_HOST=\"${REVERB_HOST}\"\nREVERB_HOST=a.example", nil, "VITE_REVERB_HOST", "${REVERB_HOST}"},
		{"latest earlier line counts", "H=one\nH=two\nV=${H}\nH=three", nil, "V", "two"},
		{"environment beats file", "REVERB_HOST=file.example\nV=\"${REVERB_HOST}\"", map[string]string{"REVERB_HOST": "env.example"}, "V", "env.example"},
		{"environment fills later line", "V=\"${LATER}\"\nLATER=file", map[string]string{"LATER": "env"}, "V", "env"},
		{"unset line hides earlier value", "H=one\nH\nV=${H}", nil, "V", "${H}"},
		{"substitution not re-expanded", "A=${B}\nB='${A}'\nC=${B}", nil, "C", "${A}"},
		{"last duplicate wins", "FOO=1\nFOO=2\n", nil, "FOO", "2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := parseString(t, tt.src, tt.env)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got, _, ok := f.Get(tt.key)
			if !ok || got != tt.want {
				t.Fatalf("Get(%q) = %q, %v; want %q", tt.key, got, ok, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name   string
		src    string
		line   int
		key    string
		reason string // substring
	}{
		{"unquoted spaces", "A=1\nFOO=bar baz # c\n", 2, "FOO", `quote it, e.g. "bar baz # c"`},
		{"stray equals", "\n\n=\n", 3, "", "name is missing"},
		{"invalid name", "FOO_ASD!=BAZ", 1, "", `invalid variable name "FOO_ASD!"`},
		{"dash in name", "MY-VAR=1", 1, "", "invalid variable name"},
		{"bad escape", `FOO="iiii\a"`, 1, "FOO", `unknown escape \a`},
		{"missing single quote", "A=1\nTEST='erert", 2, "TEST", "missing closing quote"},
		{"escape at end", `TEST="\`, 1, "TEST", "never closed"},
		{"text after quote", `FOO="a"b`, 1, "FOO", "after the closing quote"},
		{"export too short", "export A=1", 1, "", `invalid variable name "export A"`},
		{"export unbalanced name", `export "FOO="bar baz"`, 1, "", "invalid variable name"},
		{"unterminated multi-line", "A=1\nKEY=\"abc\nB=2\n", 2, "KEY", "never closed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := parseString(t, tt.src, nil)
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a *ParseError", err)
			}
			if pe.Line != tt.line || pe.Key != tt.key || !strings.Contains(pe.Reason, tt.reason) {
				t.Fatalf("got line %d key %q reason %q; want line %d key %q reason containing %q", pe.Line, pe.Key, pe.Reason, tt.line, tt.key, tt.reason)
			}
			if !strings.HasPrefix(err.Error(), ".env:") {
				t.Fatalf("message %q does not start with file:line", err)
			}
			if f == nil {
				t.Fatal("no partial file returned with the error")
			}
			if tt.name == "unquoted spaces" && pe.Fix != `FOO="bar baz"` {
				t.Fatalf("Fix = %q", pe.Fix)
			}
		})
	}
}

func TestParseKeepsGoodLinesAndReportsEveryBadOne(t *testing.T) {
	f, err := parseString(t, "A=1\nB=x y\nC=3\nD=\"\\q\"\nE=5\n", nil)
	var es Errors
	if !errors.As(err, &es) || len(es) != 2 || es[0].Line != 2 || es[1].Line != 4 {
		t.Fatalf("err = %#v, want two errors on lines 2 and 4", err)
	}
	var keys []string
	for _, e := range f.Entries {
		keys = append(keys, e.Key)
	}
	if !reflect.DeepEqual(keys, []string{"A", "C", "E"}) {
		t.Fatalf("entries %v", keys)
	}
}

func TestEntriesLinesDuplicatesAndUnset(t *testing.T) {
	src := "# Laravel\n\nBROADCAST_CONNECTION=log\nREVERB_APP_KEY=\"multi\nline\"\nBROADCAST_CONNECTION=reverb\nexport XY=1\nBROADCAST_CONNECTION=reverb # again\nGONE=1\nGONE\n"
	f, err := parseString(t, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	v, line, ok := f.Get("BROADCAST_CONNECTION")
	if v != "reverb" || line != 8 || !ok {
		t.Fatalf("Get = %q %d %v", v, line, ok)
	}
	if _, line, _ := f.Get("XY"); line != 7 {
		t.Fatalf("XY line %d (a multi-line value must count its lines)", line)
	}
	if e, _ := f.Entry("REVERB_APP_KEY"); e.Line != 4 || e.Raw != "\"multi\nline\"" || e.Value != "multi\nline" {
		t.Fatalf("entry %+v", e)
	}
	want := map[string][]int{"BROADCAST_CONNECTION": {3, 6, 8}, "GONE": {9, 10}}
	if got := f.Duplicates(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Duplicates = %v, want %v", got, want)
	}
	if _, line, ok := f.Get("GONE"); ok || line != 10 {
		t.Fatalf("GONE should be unset by line 10, got ok=%v line=%d", ok, line)
	}
	if _, _, ok := f.Get("MISSING"); ok {
		t.Fatal("MISSING found")
	}
}

func TestLoadUsesProcessEnvironment(t *testing.T) {
	path := filepath.Join(t.TempDir(), ".env")
	if err := os.WriteFile(path, []byte("V=\"${DOTENV_TEST_FROM_ENV}\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOTENV_TEST_FROM_ENV", "from-env")
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if v, _, _ := f.Get("V"); v != "from-env" {
		t.Fatalf("V = %q", v)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

func TestLaravelValue(t *testing.T) {
	tests := []struct {
		raw  string
		want Value
	}{
		{"true", Value{Kind: Bool, Bool: true}},
		{"(TRUE)", Value{Kind: Bool, Bool: true}},
		{"false", Value{Kind: Bool}},
		{"(false)", Value{Kind: Bool}},
		{"empty", Value{Kind: String}},
		{"(Empty)", Value{Kind: String}},
		{"null", Value{Kind: Null}},
		{"(NULL)", Value{Kind: Null}},
		{`"quoted"`, Value{Kind: String, Str: "quoted"}},
		{`'single'`, Value{Kind: String, Str: "single"}},
		{`"mismatched'`, Value{Kind: String, Str: `"mismatched'`}},
		{`"`, Value{Kind: String, Str: `"`}},
		{"\"two\nlines\"", Value{Kind: String, Str: "\"two\nlines\""}},
		{"yes", Value{Kind: String, Str: "yes"}},
		{"", Value{Kind: String}},
	}
	for _, tt := range tests {
		if got := LaravelValue(tt.raw); got != tt.want {
			t.Errorf("LaravelValue(%q) = %+v, want %+v", tt.raw, got, tt.want)
		}
	}
	if s := LaravelValue("true").String(); s != "1" {
		t.Errorf("true as string = %q", s)
	}
}

// Values is the file as Laravel sees it: the last line of a key wins, an unset key is gone.
func TestValues(t *testing.T) {
	f, err := parseString(t, "A=1\nB=2\nA=3\nB\nC=\"x ${A}\"\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := f.Values()
	if len(got) != 2 || got["A"] != "3" || got["C"] != "x 3" {
		t.Fatalf("Values() = %v, want A=3 C=\"x 3\"", got)
	}
}
