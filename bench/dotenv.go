package bench

import (
	"fmt"
	"os"
	"strings"
)

// readDotenv reads the KEY=value lines of a Laravel .env that the bench needs. It follows the
// common subset of phpdotenv's rules: "#" comments, optional "export ", 'single quotes'
// (literal), "double quotes" (\" \\ \n escapes, ${NAME} interpolation), unquoted values ending at
// whitespace or " #", and ${NAME} from earlier lines. (frontdoor's full parser lives under
// cmd/frontdoor/internal, which this package may not import.)
func readDotenv(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseDotenv(string(b))
}

func parseDotenv(src string) (map[string]string, error) {
	vars := map[string]string{}
	src = strings.TrimPrefix(src, "\ufeff")
	n := 0
	for line := range strings.Lines(src) {
		n++
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		key, val, ok := strings.Cut(line, "=")
		if !ok {
			continue // a bare name unsets; nothing to read
		}
		key = strings.TrimSpace(key)
		if key == "" || strings.ContainsAny(key, " \t\"'") {
			return nil, fmt.Errorf("line %d: bad variable name %q", n, key)
		}
		val = strings.TrimSpace(val)
		switch {
		case strings.HasPrefix(val, "'"):
			end := strings.IndexByte(val[1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("line %d: %s: unclosed single quote", n, key)
			}
			val = val[1 : 1+end]
		case strings.HasPrefix(val, `"`):
			var out strings.Builder
			closed := false
			for i := 1; i < len(val); i++ {
				c := val[i]
				if c == '\\' && i+1 < len(val) {
					i++
					switch val[i] {
					case 'n':
						out.WriteByte('\n')
					case 't':
						out.WriteByte('\t')
					default:
						out.WriteByte(val[i])
					}
					continue
				}
				if c == '"' {
					closed = true
					break
				}
				out.WriteByte(c)
			}
			if !closed {
				return nil, fmt.Errorf("line %d: %s: unclosed double quote (multi-line values are not supported here)", n, key)
			}
			val = interpolate(out.String(), vars)
		default:
			if i := strings.IndexAny(val, " \t#"); i >= 0 {
				val = val[:i]
			}
			val = interpolate(val, vars)
		}
		vars[key] = val
	}
	return vars, nil
}

// interpolate replaces ${NAME} with the value NAME got from an earlier line; unknown names stay.
func interpolate(s string, vars map[string]string) string {
	var out strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			out.WriteString(s)
			return out.String()
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			out.WriteString(s)
			return out.String()
		}
		name := s[i+2 : i+j]
		out.WriteString(s[:i])
		if v, ok := vars[name]; ok {
			out.WriteString(v)
		} else {
			out.WriteString(s[i : i+j+1])
		}
		s = s[i+j+1:]
	}
}
