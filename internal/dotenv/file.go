package dotenv

import (
	"os"
	"sort"
)

// Entry is one variable line of a .env file, kept with its line number so every message about
// it can point at the line to edit.
type Entry struct {
	Key   string
	Value string // after unquoting, escapes and ${NAME} interpolation
	Line  int    // 1-based line where the entry starts
	Raw   string // the value as written after "=", trimmed; multi-line values keep their "\n"
	Unset bool   // a bare "KEY" line without "=": phpdotenv clears the variable
}

// File is a parsed .env file. Entries keep file order and duplicates, because Laravel's answer
// (the last line wins) and the user's mistake (the earlier lines) both matter.
type File struct {
	Path    string
	Entries []Entry
}

// Load reads and parses the file at path, interpolating ${NAME} against the process environment
// as Laravel does when it boots.
func Load(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	return Parse(path, fh, os.LookupEnv)
}

// Get returns the value Laravel sees for key from this file: the last line wins. ok is false
// when the key is absent or its last line unsets it; line is then that line (or 0).
func (f *File) Get(key string) (value string, line int, ok bool) {
	for i := len(f.Entries) - 1; i >= 0; i-- {
		e := &f.Entries[i]
		if e.Key == key {
			if e.Unset {
				return "", e.Line, false
			}
			return e.Value, e.Line, true
		}
	}
	return "", 0, false
}

// Lines returns every line that sets or unsets key, in file order.
func (f *File) Lines(key string) []int {
	var lines []int
	for _, e := range f.Entries {
		if e.Key == key {
			lines = append(lines, e.Line)
		}
	}
	return lines
}

// Entry returns the effective (last) entry for key.
func (f *File) Entry(key string) (Entry, bool) {
	for i := len(f.Entries) - 1; i >= 0; i-- {
		if f.Entries[i].Key == key {
			return f.Entries[i], true
		}
	}
	return Entry{}, false
}

// Duplicates maps every key that appears on more than one line to those lines (ascending), so
// a pasted-twice block or a re-run installer is reported instead of silently half-applied.
func (f *File) Duplicates() map[string][]int {
	count := make(map[string]int, len(f.Entries))
	for _, e := range f.Entries {
		count[e.Key]++
	}
	dups := make(map[string][]int)
	for _, e := range f.Entries {
		if count[e.Key] > 1 {
			dups[e.Key] = append(dups[e.Key], e.Line)
		}
	}
	for _, lines := range dups {
		sort.Ints(lines)
	}
	return dups
}

// Values is what Laravel sees of the file: each key's last value, unset keys left out.
func (f *File) Values() map[string]string {
	out := make(map[string]string, len(f.Entries))
	for _, e := range f.Entries {
		if e.Unset {
			delete(out, e.Key)
		} else {
			out[e.Key] = e.Value
		}
	}
	return out
}
