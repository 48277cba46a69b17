package bench

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

func compareMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("frontdoor bench compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	html := fs.String("html", "", "also write the comparison as self-contained HTML with charts to `file`")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() < 1 {
		fmt.Fprintln(stderr, "bench compare: give one or more JSON reports (frontdoor bench suite --json a.json)")
		return 2
	}
	var reps []*Report
	for _, p := range fs.Args() {
		rep, err := ReadReport(p)
		if err != nil {
			fmt.Fprintf(stderr, "bench compare: %v\n", err)
			return 1
		}
		reps = append(reps, rep)
	}
	WriteComparison(stdout, reps)
	if *html != "" {
		if err := writeFile(*html, func(w io.Writer) error { return WriteHTML(w, reps) }); err != nil {
			fmt.Fprintf(stderr, "bench compare: %v\n", err)
			return 1
		}
		fmt.Fprintf(stderr, "report: %s\n", *html)
	}
	return 0
}

// compareRow is one metric across reports; nil values are missing in that report.
type compareRow struct {
	scenario string
	m        Metric
	values   []*float64
	best     int // index of the best value, -1 when not comparable
}

// comparison lines up every result name and metric key across the reports, in the order of
// first appearance, and marks the best value where a direction is known.
func comparison(reps []*Report) (names []string, rows map[string][]compareRow) {
	rows = map[string][]compareRow{}
	index := map[string]int{}
	for ri, rep := range reps {
		for _, res := range rep.Results {
			if _, ok := rows[res.Name]; !ok {
				names = append(names, res.Name)
				rows[res.Name] = nil
			}
			extra := []Metric{
				{Key: "server_cpu_s", Label: "server CPU seconds", Value: res.Server.CPUSeconds, Unit: "s"},
				{Key: "client_cpu_s", Label: "client CPU seconds", Value: res.Client.CPUSeconds, Unit: "s"},
			}
			if res.Server.RSSPeak > 0 {
				extra = append(extra, Metric{Key: "server_rss_peak", Label: "server RSS peak", Value: float64(res.Server.RSSPeak) / (1 << 20), Unit: "MB", Better: "lower"})
			}
			for _, l := range res.Latencies {
				if l.Count > 0 {
					extra = append(extra, Metric{Key: "p99 " + l.Name, Label: l.Name + " p99", Value: l.P99, Unit: "ms", Better: "lower"},
						Metric{Key: "p50 " + l.Name, Label: l.Name + " p50", Value: l.P50, Unit: "ms", Better: "lower"})
				}
			}
			for _, m := range append(append([]Metric(nil), res.Metrics...), extra...) {
				id := res.Name + "\x00" + m.Key
				i, ok := index[id]
				if !ok {
					i = len(rows[res.Name])
					index[id] = i
					rows[res.Name] = append(rows[res.Name], compareRow{scenario: res.Name, m: m, values: make([]*float64, len(reps))})
				}
				v := m.Value
				rows[res.Name][i].values[ri] = &v
			}
		}
	}
	for _, name := range names {
		for i := range rows[name] {
			r := &rows[name][i]
			r.best = -1
			if r.m.Better == "" || len(reps) < 2 {
				continue
			}
			n := 0
			for j, v := range r.values {
				if v == nil {
					continue
				}
				n++
				if r.best < 0 || (r.m.Better == "higher" && *v > *r.values[r.best]) || (r.m.Better == "lower" && *v < *r.values[r.best]) {
					r.best = j
				}
			}
			ties := 0
			for _, v := range r.values {
				if v != nil && r.best >= 0 && *v == *r.values[r.best] {
					ties++
				}
			}
			if n < 2 || ties > 1 {
				r.best = -1 // nothing to prefer
			}
		}
	}
	return names, rows
}

// WriteComparison prints the reports side by side: one column per report, the best value of
// each metric marked with '*'.
func WriteComparison(w io.Writer, reps []*Report) {
	for i, rep := range reps {
		c := rep.Conditions
		fmt.Fprintf(w, "[%d] %s: %s, %s, %d CPU, load %s, sizes %s\n", i+1, rep.Label, rep.Target,
			rep.Started.UTC().Format("2006-01-02 15:04 UTC"), c.CPUs, c.LoadAvgStart, map[bool]string{true: "small", false: "standard"}[c.SmallSizes])
	}
	names, rows := comparison(reps)
	for _, name := range names {
		fmt.Fprintf(w, "\n== %s\n", name)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		head := []string{"  metric"}
		for _, rep := range reps {
			head = append(head, rep.Label)
		}
		fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
		for _, r := range rows[name] {
			cols := []string{"  " + r.m.Label}
			for j, v := range r.values {
				s := "-"
				if v != nil {
					s = formatValue(*v, r.m.Unit)
				}
				if j == r.best {
					s = "*" + s
				}
				cols = append(cols, s)
			}
			fmt.Fprintln(tw, strings.Join(cols, "\t")+"\t")
		}
		tw.Flush()
	}
}
