package dotenv

import "strings"

// Kind says which PHP type Laravel's env() returns for a value.
type Kind uint8

// The types env() can produce from a string.
const (
	String Kind = iota
	Bool
	Null
)

// Value is a .env string converted as Laravel's env() helper converts it
// (Illuminate\Support\Env::get), so checks compare what PHP code actually receives.
type Value struct {
	Kind Kind
	Str  string // for String (also "" for the "empty" keyword)
	Bool bool   // for Bool
}

// LaravelValue applies env()'s conversion: true/(true) and false/(false) become booleans,
// empty/(empty) the empty string, null/(null) null (all case-insensitive); otherwise one pair of
// matching surrounding quotes is removed.
func LaravelValue(raw string) Value {
	switch strings.ToLower(raw) {
	case "true", "(true)":
		return Value{Kind: Bool, Bool: true}
	case "false", "(false)":
		return Value{Kind: Bool}
	case "empty", "(empty)":
		return Value{Kind: String}
	case "null", "(null)":
		return Value{Kind: Null}
	}
	// preg_match('/\A([\'"])(.*)\1\z/'): "." does not match "\n" without /s, so a quoted value
	// spanning lines keeps its quotes.
	if n := len(raw); n >= 2 && (raw[0] == '"' || raw[0] == '\'') && raw[n-1] == raw[0] &&
		!strings.Contains(raw[1:n-1], "\n") {
		return Value{Kind: String, Str: raw[1 : n-1]}
	}
	return Value{Kind: String, Str: raw}
}

// String renders the value as PHP's string cast would ("1"/"" for booleans, "" for null).
func (v Value) String() string {
	switch v.Kind {
	case Bool:
		if v.Bool {
			return "1"
		}
		return ""
	case Null:
		return ""
	}
	return v.Str
}
