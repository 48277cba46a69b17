package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// Report is one benchmark run against one server: the conditions it ran under and one Result
// per scenario. It is what --json writes and what compare reads back.
type Report struct {
	Tool       string     `json:"tool"`
	Label      string     `json:"label"`  // the server's name in comparisons (--label)
	Target     string     `json:"target"` // WebSocket base URL ("url + node + …" with --node)
	Started    time.Time  `json:"started"`
	Seconds    float64    `json:"seconds"`
	Conditions Conditions `json:"conditions"`
	Results    []Result   `json:"results"`
}

// Conditions records what a reader needs to judge a figure: the machine, its load, the limits
// both processes got, and that the load generator shared the server's cores.
type Conditions struct {
	CPUModel         string   `json:"cpu_model"`
	CPUs             int      `json:"cpus"`
	MemoryMB         int64    `json:"memory_mb"`
	Kernel           string   `json:"kernel"`
	GoVersion        string   `json:"go_version"`
	LoadAvgStart     string   `json:"loadavg_start"`
	LoadAvgEnd       string   `json:"loadavg_end"`
	ClientNoFile     uint64   `json:"client_nofile"`
	ServerPIDs       []int    `json:"server_pids,omitempty"`
	ServerCommand    string   `json:"server_command,omitempty"`
	ServerNoFile     string   `json:"server_nofile,omitempty"`
	ClientSameHost   bool     `json:"client_same_host"`
	Notes            []string `json:"notes,omitempty"`
	SmallSizes       bool     `json:"small_sizes,omitempty"`
	ServerSampleNote string   `json:"server_sample_note,omitempty"`
	Pinned           string   `json:"pinned,omitempty"` // --pin: which CPUs client and server ran on
}

// Result is one scenario's outcome. Metrics are an ordered list so tables and comparisons
// render any scenario the same way.
type Result struct {
	Scenario  string            `json:"scenario"` // connections, fanout, publish, presence, churn, proxy
	Name      string            `json:"name"`     // unique within a report, e.g. fanout-throughput
	Title     string            `json:"title"`    // one line saying what was measured
	Params    map[string]string `json:"params"`
	Seconds   float64           `json:"seconds"`
	Metrics   []Metric          `json:"metrics"`
	Latencies []Latency         `json:"latencies,omitempty"`
	Series    []Sample          `json:"series,omitempty"`
	RateLabel string            `json:"rate_label,omitempty"` // what Series[].Rate counts, per second
	Server    Usage             `json:"server"`
	Client    Usage             `json:"client"`
	Errors    []string          `json:"errors,omitempty"`
}

// Metric is one number with its unit and which direction is better (for comparisons).
type Metric struct {
	Key    string  `json:"key"`
	Label  string  `json:"label"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit,omitempty"`
	Better string  `json:"better,omitempty"` // "higher", "lower" or "" (informational)
}

// Latency is a latency distribution in milliseconds.
type Latency struct {
	Name  string     `json:"name"`
	Count uint64     `json:"count"`
	Min   float64    `json:"min_ms"`
	Mean  float64    `json:"mean_ms"`
	P50   float64    `json:"p50_ms"`
	P90   float64    `json:"p90_ms"`
	P99   float64    `json:"p99_ms"`
	P999  float64    `json:"p999_ms"`
	Max   float64    `json:"max_ms"`
	CDF   []CDFPoint `json:"cdf,omitempty"`
}

// CDFPoint says that Fraction of the samples took at most Ms milliseconds.
type CDFPoint struct {
	Ms       float64 `json:"ms"`
	Fraction float64 `json:"f"`
}

// Sample is one tick of the resource monitor.
type Sample struct {
	T         float64 `json:"t"`    // seconds since the scenario started
	Rate      float64 `json:"rate"` // scenario events per second during the tick (see RateLabel)
	Count     float64 `json:"count"`
	ServerRSS int64   `json:"server_rss,omitempty"` // bytes, summed over --server-pid
	ServerCPU float64 `json:"server_cpu"`           // percent of one core during the tick
	ClientCPU float64 `json:"client_cpu"`
}

// Usage is a process's resource use over a scenario.
type Usage struct {
	CPUSeconds float64 `json:"cpu_seconds"`
	CPUPercent float64 `json:"cpu_percent"` // average, percent of one core
	// SysSeconds is the part of CPUSeconds spent in the kernel (system calls, the TCP stack):
	// work every server on the same sockets pays, which bounds what user-space gains can show.
	SysSeconds float64 `json:"sys_seconds,omitempty"`
	RSSStart   int64   `json:"rss_start,omitempty"`
	RSSPeak    int64   `json:"rss_peak,omitempty"`
	RSSEnd     int64   `json:"rss_end,omitempty"`
}

func (r *Result) add(key, label string, v float64, unit, better string) {
	r.Metrics = append(r.Metrics, Metric{Key: key, Label: label, Value: v, Unit: unit, Better: better})
}

// Metric returns the metric with key, and whether it exists.
func (r *Result) Metric(key string) (float64, bool) {
	for _, m := range r.Metrics {
		if m.Key == key {
			return m.Value, true
		}
	}
	return 0, false
}

// Result returns the result named name, or nil.
func (rep *Report) Result(name string) *Result {
	for i := range rep.Results {
		if rep.Results[i].Name == name {
			return &rep.Results[i]
		}
	}
	return nil
}

// WriteJSON writes the report as indented JSON.
func (rep *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	return enc.Encode(rep)
}

// ReadReport loads a report written by WriteJSON.
func ReadReport(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, fmt.Errorf("%s: not a bench report: %w", path, err)
	}
	if rep.Tool != toolName {
		return nil, fmt.Errorf("%s: not a bench report (tool %q)", path, rep.Tool)
	}
	return &rep, nil
}

const toolName = "frontdoor bench"

// WriteText renders the report as plain tables: one block per scenario.
func (rep *Report) WriteText(w io.Writer) {
	fmt.Fprintf(w, "%s: %s (%s), %s\n", toolName, rep.Label, rep.Target, rep.Started.UTC().Format(time.RFC3339))
	c := rep.Conditions
	fmt.Fprintf(w, "machine: %d CPU (%s), %d MB, kernel %s, load %s; client on the same host: %v\n",
		c.CPUs, c.CPUModel, c.MemoryMB, c.Kernel, c.LoadAvgStart, c.ClientSameHost)
	if c.ServerNoFile != "" {
		fmt.Fprintf(w, "server pid %v (%s), open-file limit %s; client limit %d\n", c.ServerPIDs, c.ServerCommand, c.ServerNoFile, c.ClientNoFile)
	}
	for _, n := range c.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	for i := range rep.Results {
		r := &rep.Results[i]
		fmt.Fprintf(w, "\n== %s: %s (%.1f s)\n", r.Name, r.Title, r.Seconds)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, m := range r.Metrics {
			fmt.Fprintf(tw, "  %s\t%s\n", m.Label, formatValue(m.Value, m.Unit))
		}
		fmt.Fprintf(tw, "  server CPU\t%.2f s (%.0f%% of a core", r.Server.CPUSeconds, r.Server.CPUPercent)
		if r.Server.CPUSeconds > 0 {
			fmt.Fprintf(tw, "; %.0f%% of it in the kernel", 100*r.Server.SysSeconds/r.Server.CPUSeconds)
		}
		fmt.Fprintf(tw, ")\n")
		if r.Server.RSSPeak > 0 {
			fmt.Fprintf(tw, "  server RSS start/peak/end\t%s / %s / %s\n", mb(r.Server.RSSStart), mb(r.Server.RSSPeak), mb(r.Server.RSSEnd))
		}
		fmt.Fprintf(tw, "  client CPU\t%.2f s (%.0f%% of a core)\n", r.Client.CPUSeconds, r.Client.CPUPercent)
		tw.Flush()
		if len(r.Latencies) > 0 {
			tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintf(tw, "  latency ms\tcount\tp50\tp90\tp99\tp99.9\tmax\t\n")
			for _, l := range r.Latencies {
				fmt.Fprintf(tw, "  %s\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t\n", l.Name, l.Count, l.P50, l.P90, l.P99, l.P999, l.Max)
			}
			tw.Flush()
		}
		for _, e := range r.Errors {
			fmt.Fprintf(w, "  error: %s\n", e)
		}
	}
}

func mb(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/(1<<20)) }

// formatValue prints v with its unit, with thousands separators for counts and rates.
func formatValue(v float64, unit string) string {
	var s string
	switch {
	case v == float64(int64(v)) && (v >= 1000 || v <= -1000 || unit == "" || strings.HasSuffix(unit, "/s") && v >= 100):
		s = groupThousands(int64(v))
	case v >= 100 || v <= -100:
		s = groupThousands(int64(v + 0.5))
	case v >= 10:
		s = fmt.Sprintf("%.1f", v)
	default:
		s = fmt.Sprintf("%.2f", v)
	}
	if unit != "" {
		s += " " + unit
	}
	return s
}

func groupThousands(n int64) string {
	neg := n < 0
	if neg {
		n = -n
	}
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// errorLog keeps the first distinct error messages of a scenario with their counts, so a run
// with ten thousand identical failures reports one line, not ten thousand.
type errorLog struct {
	mu    sync.Mutex
	order []string
	count map[string]int
}

func newErrorLog() *errorLog { return &errorLog{count: map[string]int{}} }

func (l *errorLog) add(err error) {
	if err == nil {
		return
	}
	msg := err.Error()
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.count[msg]; !ok && len(l.order) < 20 {
		l.order = append(l.order, msg)
	}
	l.count[msg]++
}

func (l *errorLog) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, 0, len(l.order))
	for _, m := range l.order {
		out = append(out, fmt.Sprintf("%s (x%d)", m, l.count[m]))
	}
	return out
}
