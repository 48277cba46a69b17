package doctor

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Severity orders findings: an error breaks broadcasting, a warning will bite in some setups,
// info explains what doctor saw.
type Severity string

// The three severities; doctor exits 1 when any finding is an error.
const (
	Error   Severity = "error"
	Warning Severity = "warning"
	Info    Severity = "info"
)

func (s Severity) rank() int {
	switch s {
	case Error:
		return 0
	case Warning:
		return 1
	}
	return 2
}

// Finding is one thing doctor noticed. Code is a stable identifier (scripts and docs may match
// on it); File and Line point at what to edit; Fix is the exact text to write or command to run.
type Finding struct {
	Severity Severity `json:"severity"`
	Code     string   `json:"code"`
	File     string   `json:"file,omitempty"`
	Line     int      `json:"line,omitempty"`
	Message  string   `json:"message"`
	Fix      string   `json:"fix,omitempty"`
}

// Report is the outcome of one doctor run.
type Report struct {
	EnvFile  string    `json:"env_file,omitempty"`
	URL      string    `json:"url,omitempty"` // the server the live checks used, "" when none
	Findings []Finding `json:"findings"`
}

// Count returns how many findings have severity s.
func (r *Report) Count(s Severity) int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == s {
			n++
		}
	}
	return n
}

// sortFindings groups by severity and keeps file order (then discovery order) inside a group.
func (r *Report) sortFindings() {
	key := func(f Finding) (int, int, int) {
		file := 1
		if f.File == r.EnvFile {
			file = 0 // the .env first, project files and live checks after
		}
		line := f.Line
		if line == 0 {
			line = 1 << 30
		}
		return f.Severity.rank(), file, line
	}
	sort.SliceStable(r.Findings, func(i, j int) bool {
		a1, a2, a3 := key(r.Findings[i])
		b1, b2, b3 := key(r.Findings[j])
		if a1 != b1 {
			return a1 < b1
		}
		if a2 != b2 {
			return a2 < b2
		}
		return a3 < b3
	})
}

func (r *Report) writeJSON(w io.Writer) error {
	out := struct {
		*Report
		Errors   int `json:"errors"`
		Warnings int `json:"warnings"`
	}{r, r.Count(Error), r.Count(Warning)}
	if out.Findings == nil {
		out.Findings = []Finding{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func (r *Report) writeText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "frontdoor doctor")
	if r.EnvFile != "" {
		fmt.Fprintf(&b, ": %s", r.EnvFile)
	}
	if r.URL != "" {
		fmt.Fprintf(&b, " (live: %s)", r.URL)
	}
	b.WriteString("\n")
	for _, sev := range []Severity{Error, Warning, Info} {
		n := r.Count(sev)
		if n == 0 {
			continue
		}
		title := map[Severity]string{Error: "Errors", Warning: "Warnings", Info: "Info"}[sev]
		fmt.Fprintf(&b, "\n%s (%d)\n", title, n)
		for _, f := range r.Findings {
			if f.Severity != sev {
				continue
			}
			loc := f.File
			if f.Line > 0 {
				loc = fmt.Sprintf("%s:%d", f.File, f.Line)
			}
			if loc != "" {
				loc += ": "
			}
			fmt.Fprintf(&b, "  %s[%s] %s\n", loc, f.Code, f.Message)
			if f.Fix != "" {
				lines := strings.Split(f.Fix, "\n")
				fmt.Fprintf(&b, "      fix: %s\n", lines[0])
				for _, l := range lines[1:] {
					fmt.Fprintf(&b, "           %s\n", l)
				}
			}
		}
	}
	fmt.Fprintf(&b, "\n%d error(s), %d warning(s), %d info\n", r.Count(Error), r.Count(Warning), r.Count(Info))
	_, err := io.WriteString(w, b.String())
	return err
}
