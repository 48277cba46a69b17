package dotenv

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxFileBytes bounds what Parse reads: a .env is a few KB; anything near this is not one.
const maxFileBytes = 16 << 20

// Parse reads a .env file from r. path is only used in errors. lookup is the real environment
// (nil for none); it wins over the file's own earlier values when ${NAME} is resolved (see the
// package doc). On invalid lines Parse still returns every valid entry, together with an Errors
// value listing each invalid line.
func Parse(path string, r io.Reader, lookup func(string) (string, bool)) (*File, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes; not a .env file", path, maxFileBytes)
	}
	data = bytes.TrimPrefix(data, []byte("\xEF\xBB\xBF"))
	content := toUTF8(data)

	f := &File{Path: path}
	var errs Errors
	loaded := make(map[string]*string) // what the file has set so far; nil = unset by a bare name
	resolve := func(name string) (string, bool) {
		if lookup != nil {
			if v, ok := lookup(name); ok {
				return v, true
			}
		}
		if v := loaded[name]; v != nil {
			return *v, true
		}
		return "", false
	}

	for _, raw := range splitEntries(content) {
		if raw.unterminated {
			key, _, _ := strings.Cut(raw.text, "=")
			errs = append(errs, &ParseError{Path: path, Line: raw.line, Key: strings.TrimSpace(key),
				Reason: `the double-quoted value is never closed (add the closing " ; Laravel would silently drop this and every following line)`})
			continue
		}
		e, perr := parseEntry(raw.text)
		if perr != nil {
			perr.Path, perr.Line = path, raw.line
			errs = append(errs, perr)
			continue
		}
		e.Line = raw.line
		if e.Unset {
			loaded[e.Key] = nil
		} else {
			e.Value = interpolate(e.Value, e.vars, resolve)
			v := e.Value
			loaded[e.Key] = &v
		}
		f.Entries = append(f.Entries, e.Entry)
	}
	if len(errs) > 0 {
		return f, errs
	}
	return f, nil
}

// toUTF8 mirrors phpdotenv's mb_convert_encoding($s, 'UTF-8'): each invalid byte becomes "?".
func toUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	sb.Grow(len(b))
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n <= 1 {
			sb.WriteByte('?')
			b = b[1:]
			continue
		}
		sb.Write(b[:n])
		b = b[n:]
	}
	return sb.String()
}

type rawEntry struct {
	text         string
	line         int
	unterminated bool
}

// splitEntries is phpdotenv's Lines::process: split on \r\n, \n or \r, glue the lines of a
// multi-line double-quoted value back together with "\n", and drop blank and comment lines.
func splitEntries(content string) []rawEntry {
	var out []rawEntry
	var buf []string
	start := 0
	for i, line := range splitLines(content) {
		lineNo := i + 1
		switch {
		case buf != nil:
			buf = append(buf, line)
			if stopsMultiline(line, false) {
				out = append(out, rawEntry{text: strings.Join(buf, "\n"), line: start})
				buf = nil
			}
		case strings.Contains(line, `="`) && !stopsMultiline(line, true):
			buf, start = []string{line}, lineNo
		case !isCommentOrBlank(line):
			out = append(out, rawEntry{text: line, line: lineNo})
		}
	}
	if buf != nil {
		out = append(out, rawEntry{text: buf[0], line: start, unterminated: true})
	}
	return out
}

// splitLines is preg_split("/(\r\n|\n|\r)/", $content): a final line break yields a last
// empty line.
func splitLines(s string) []string {
	var lines []string
	for {
		i := strings.IndexAny(s, "\r\n")
		if i < 0 {
			return append(lines, s)
		}
		lines = append(lines, s[:i])
		if s[i] == '\r' && i+1 < len(s) && s[i+1] == '\n' {
			i++
		}
		s = s[i+1:]
	}
}

// stopsMultiline is Lines::looksLikeMultilineStop: after removing "\\" pairs, count the places
// where a character other than a backslash is followed by a double quote. The opening line
// needs two (the opening "=\"" is one), a continuation line one.
func stopsMultiline(line string, started bool) bool {
	if line == `"` {
		return true
	}
	s := strings.ReplaceAll(line, `\\`, "")
	n := 0
	for i := 0; i+1 < len(s); i++ {
		if s[i] != '\\' && s[i+1] == '"' {
			n++
		}
	}
	if started {
		return n > 1
	}
	return n >= 1
}

func isCommentOrBlank(line string) bool {
	t := strings.Trim(line, phpTrim)
	return t == "" || t[0] == '#'
}

// phpTrim is the character list of PHP's trim() default.
const phpTrim = " \n\r\t\x00\x0B"

// parsedEntry is an Entry plus the offsets of "$" signs that may start ${NAME}.
type parsedEntry struct {
	Entry
	vars []int
}

// parseEntry is EntryParser::parse for one (possibly multi-line) entry.
func parseEntry(text string) (parsedEntry, *ParseError) {
	name, value, hasEq := strings.Cut(text, "=")
	name = strings.Trim(name, phpTrim)
	if name == "" && hasEq {
		return parsedEntry{}, &ParseError{Reason: "the line starts with \"=\": a variable name is missing"}
	}
	if n := utf8.RuneCountInString(name); n > 8 && strings.HasPrefix(name, "export") && isSpace(name[6]) {
		name = strings.TrimLeft(name[6:], " \t\n\r\v\f")
	}
	if n := utf8.RuneCountInString(name); n >= 3 && (name[0] == '"' || name[0] == '\'') && name[len(name)-1] == name[0] {
		name = name[1 : len(name)-1]
	}
	if !validName(name) {
		return parsedEntry{}, &ParseError{Reason: fmt.Sprintf("invalid variable name %q: use letters, digits, _ and . only, then = and the value", firstLine(name))}
	}
	if !hasEq {
		return parsedEntry{Entry: Entry{Key: name, Unset: true}}, nil
	}
	value = strings.Trim(value, phpTrim)
	e := parsedEntry{Entry: Entry{Key: name, Raw: value}}
	if value == "" {
		return e, nil
	}
	v, vars, reason := parseValue(value)
	if reason != "" {
		pe := &ParseError{Key: name, Reason: reason}
		if strings.HasPrefix(reason, "an unquoted value") {
			pe.Fix = name + `="` + escapeDouble(stripComment(value)) + `"`
		}
		return parsedEntry{}, pe
	}
	e.Value, e.vars = v, vars
	return e, nil
}

func validName(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		if r == '_' || r == '.' || unicode.In(r, unicode.Ll, unicode.Lu, unicode.M, unicode.N) {
			continue
		}
		return false
	}
	return true
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// isSpace is PHP's ctype_space for one byte.
func isSpace(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\v', '\f', '\r':
		return true
	}
	return false
}

const (
	stInitial = iota
	stUnquoted
	stSingle
	stDouble
	stEscape
	stAfterQuote // phpdotenv's WHITESPACE_STATE entered by a closing quote
	stAfterSpace // phpdotenv's WHITESPACE_STATE entered by whitespace in an unquoted value
	stComment
)

// parseValue runs EntryParser's state machine over a trimmed, non-empty value. It returns the
// characters, the offsets of "$" signs eligible for interpolation, or a reason on error.
func parseValue(value string) (string, []int, string) {
	var sb strings.Builder
	var vars []int
	state := stInitial
	for i := 0; i < len(value); i++ {
		c := value[i]
		switch state {
		case stInitial, stUnquoted:
			switch {
			case state == stInitial && c == '\'':
				state = stSingle
			case state == stInitial && c == '"':
				state = stDouble
			case c == '#':
				state = stComment
			case state == stUnquoted && isSpace(c):
				state = stAfterSpace
			default:
				if c == '$' {
					vars = append(vars, sb.Len())
				}
				sb.WriteByte(c)
				state = stUnquoted
			}
		case stSingle:
			if c == '\'' {
				state = stAfterQuote
			} else {
				sb.WriteByte(c)
			}
		case stDouble:
			switch c {
			case '"':
				state = stAfterQuote
			case '\\':
				state = stEscape
			case '$':
				vars = append(vars, sb.Len())
				sb.WriteByte(c)
			default:
				sb.WriteByte(c)
			}
		case stEscape:
			switch c {
			case '"', '\\', '$':
				sb.WriteByte(c)
			case 'f':
				sb.WriteByte('\f')
			case 'n':
				sb.WriteByte('\n')
			case 'r':
				sb.WriteByte('\r')
			case 't':
				sb.WriteByte('\t')
			case 'v':
				sb.WriteByte('\v')
			default:
				esc := string(c)
				if c >= utf8.RuneSelf {
					r, _ := utf8.DecodeRuneInString(value[i:])
					esc = string(r)
				}
				return "", nil, fmt.Sprintf(`unknown escape \%s in a double-quoted value: write \\ for a backslash, or use single quotes for literal text`, escape(esc))
			}
			state = stDouble
		case stAfterQuote, stAfterSpace:
			switch {
			case c == '#':
				state = stComment
			case isSpace(c):
			case state == stAfterQuote:
				return "", nil, `text after the closing quote: a comment needs " #", anything else belongs inside the quotes`
			default:
				return "", nil, fmt.Sprintf(`an unquoted value cannot contain spaces: quote it, e.g. "%s"`, escapeDouble(value))
			}
		case stComment:
			return sb.String(), vars, ""
		}
	}
	switch state {
	case stSingle, stDouble, stEscape:
		return "", nil, "missing closing quote"
	}
	return sb.String(), vars, ""
}

func escape(s string) string {
	if s == "" || !unicode.IsPrint([]rune(s)[0]) {
		return fmt.Sprintf("%q", s)
	}
	return s
}

// stripComment cuts an unquoted value at a " #" comment, for suggested rewrites.
func stripComment(v string) string {
	for i := 1; i < len(v); i++ {
		if v[i] == '#' && isSpace(v[i-1]) {
			return strings.TrimRight(v[:i], " \t")
		}
	}
	return v
}

// escapeDouble writes s as the inside of a phpdotenv double-quoted value.
func escapeDouble(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return r.Replace(s)
}

// interpolate is Resolver::resolve: from the last "$" to the first, replace a "${NAME}" that
// starts there with NAME's value; an unknown NAME keeps the text. Right to left makes
// "${${INNER}}" work and never re-expands a substituted value.
func interpolate(s string, vars []int, resolve func(string) (string, bool)) string {
	for j := len(vars) - 1; j >= 0; j-- {
		i := vars[j]
		rest := s[i:]
		if !strings.HasPrefix(rest, "${") {
			continue
		}
		end := 2
		for end < len(rest) && isVarNameByte(rest[end]) {
			end++
		}
		if end == 2 || end >= len(rest) || rest[end] != '}' {
			continue
		}
		v, ok := resolve(rest[2:end])
		if !ok {
			continue
		}
		s = s[:i] + v + rest[end+1:]
	}
	return s
}

func isVarNameByte(c byte) bool {
	return c == '_' || c == '.' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9')
}
