package dotenv

import (
	"fmt"
	"strings"
)

// ParseError is one invalid line. It carries the line number so callers (start-up errors,
// doctor findings) can print file:line and the user can go straight to it.
type ParseError struct {
	Path   string
	Line   int
	Key    string // the variable name when it could be read, else ""
	Reason string // what is wrong, with the way to write it instead
	Fix    string // the line rewritten when there is one obvious way, else ""
}

func (e *ParseError) Error() string {
	if e.Key != "" {
		return fmt.Sprintf("%s:%d: %s: %s", e.Path, e.Line, e.Key, e.Reason)
	}
	return fmt.Sprintf("%s:%d: %s", e.Path, e.Line, e.Reason)
}

// Errors is every invalid line of one file. Parse returns it (never an empty one) so a user
// fixes all lines in one pass; errors.As finds the individual *ParseError values.
type Errors []*ParseError

func (es Errors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Unwrap exposes the individual errors to errors.Is and errors.As.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}
