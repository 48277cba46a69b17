package doctor

import (
	"fmt"
	"strconv"
	"strings"
)

// parseConfigCache reads bootstrap/cache/config.php, which `php artisan config:cache` writes as
// "<?php return " + var_export($config, true) + ";". It understands what var_export emits:
// array ( key => value, ... ), '...' strings with \' and \\ escapes (” . "\0" . ” for NUL
// bytes), integers, floats, true/false/NULL, and objects or enum cases, which it keeps as nil.
// Arrays become map[string]any with integer keys written in decimal.
func parseConfigCache(src string) (map[string]any, error) {
	p := &phpParser{s: src}
	p.skipSpace()
	if !p.eat("<?php") {
		return nil, fmt.Errorf("not a PHP file")
	}
	p.skipSpace()
	if !p.eatWord("return") {
		return nil, fmt.Errorf("no return statement")
	}
	v, err := p.value(0)
	if err != nil {
		return nil, fmt.Errorf("at byte %d: %w", p.i, err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("the file does not return an array")
	}
	return m, nil
}

type phpParser struct {
	s string
	i int
}

const maxPHPDepth = 64

func (p *phpParser) skipSpace() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r', '\v', '\f':
			p.i++
		default:
			return
		}
	}
}

func (p *phpParser) eat(tok string) bool {
	p.skipSpace()
	if strings.HasPrefix(p.s[p.i:], tok) {
		p.i += len(tok)
		return true
	}
	return false
}

func (p *phpParser) eatWord(w string) bool {
	p.skipSpace()
	if len(p.s)-p.i >= len(w) && strings.EqualFold(p.s[p.i:p.i+len(w)], w) &&
		(p.i+len(w) == len(p.s) || !isIdentByte(p.s[p.i+len(w)])) {
		p.i += len(w)
		return true
	}
	return false
}

func isIdentByte(c byte) bool {
	return c == '_' || c == '\\' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') || c >= 0x80
}

func (p *phpParser) value(depth int) (any, error) {
	if depth > maxPHPDepth {
		return nil, fmt.Errorf("nested too deeply")
	}
	p.skipSpace()
	if p.i >= len(p.s) {
		return nil, fmt.Errorf("unexpected end")
	}
	switch c := p.s[p.i]; {
	case c == '\'' || c == '"':
		return p.str()
	case c == '-' || ('0' <= c && c <= '9'):
		return p.number()
	case p.eatWord("array"):
		return p.array(depth)
	case p.eat("(object)"):
		_, err := p.value(depth + 1)
		return nil, err
	case isIdentByte(c):
		return p.constant(depth)
	}
	return nil, fmt.Errorf("unexpected %q", p.s[p.i])
}

// str reads one or more string literals joined by ".".
func (p *phpParser) str() (string, error) {
	var sb strings.Builder
	for {
		p.skipSpace()
		if p.i >= len(p.s) {
			return "", fmt.Errorf("unexpected end in a string")
		}
		q := p.s[p.i]
		if q != '\'' && q != '"' {
			return "", fmt.Errorf("expected a string")
		}
		p.i++
		for {
			if p.i >= len(p.s) {
				return "", fmt.Errorf("unterminated string")
			}
			c := p.s[p.i]
			p.i++
			if c == q {
				break
			}
			if c == '\\' && p.i < len(p.s) {
				n := p.s[p.i]
				switch {
				case q == '\'' && (n == '\'' || n == '\\'):
					c = n
					p.i++
				case q == '"' && n == '0':
					c = 0
					p.i++
				case q == '"' && (n == '"' || n == '\\' || n == '$'):
					c = n
					p.i++
				}
			}
			sb.WriteByte(c)
		}
		save := p.i
		if !p.eat(".") {
			return sb.String(), nil
		}
		p.skipSpace()
		if p.i >= len(p.s) || (p.s[p.i] != '\'' && p.s[p.i] != '"') {
			p.i = save
			return sb.String(), nil
		}
	}
}

func (p *phpParser) number() (any, error) {
	start := p.i
	if p.s[p.i] == '-' {
		p.i++
	}
	for p.i < len(p.s) && strings.IndexByte("0123456789.eE+-", p.s[p.i]) >= 0 {
		p.i++
	}
	lit := p.s[start:p.i]
	if n, err := strconv.ParseInt(lit, 10, 64); err == nil {
		return n, nil
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil {
		return nil, fmt.Errorf("bad number %q", lit)
	}
	return f, nil
}

func (p *phpParser) array(depth int) (map[string]any, error) {
	if !p.eat("(") {
		return nil, fmt.Errorf("expected ( after array")
	}
	m := make(map[string]any)
	for {
		if p.eat(")") {
			return m, nil
		}
		k, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		if !p.eat("=>") {
			return nil, fmt.Errorf("expected =>")
		}
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		switch k := k.(type) {
		case string:
			m[k] = v
		case int64:
			m[strconv.FormatInt(k, 10)] = v
		default:
			return nil, fmt.Errorf("array key of type %T", k)
		}
		if !p.eat(",") {
			if p.eat(")") {
				return m, nil
			}
			return nil, fmt.Errorf("expected , or )")
		}
	}
}

// constant reads true/false/null, or an object (\Cls::__set_state(array(...)), an enum case
// \Cls::CASE, a \Closure::fromCallable(...)): those have no .env meaning and become nil.
func (p *phpParser) constant(depth int) (any, error) {
	start := p.i
	for p.i < len(p.s) && (isIdentByte(p.s[p.i]) || p.s[p.i] == ':') {
		p.i++
	}
	switch strings.ToLower(p.s[start:p.i]) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	case "null":
		return nil, nil
	}
	if p.eat("(") {
		for !p.eat(")") {
			if _, err := p.value(depth + 1); err != nil {
				return nil, err
			}
			p.eat(",")
			if p.i >= len(p.s) {
				return nil, fmt.Errorf("unexpected end in a call")
			}
		}
	}
	if p.i == start {
		return nil, fmt.Errorf("unexpected %q", p.s[p.i])
	}
	return nil, nil
}

// lookupPath walks nested arrays: lookupPath(m, "broadcasting", "connections", "reverb", "key").
func lookupPath(m map[string]any, path ...string) (any, bool) {
	var cur any = m
	for _, k := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = mm[k]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// phpString renders a scalar as PHP's string cast would, for comparison with .env text.
func phpString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case bool:
		if v {
			return "1"
		}
		return ""
	}
	return ""
}
