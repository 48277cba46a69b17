package bench

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
)

// WriteHTML renders one or more reports as a single self-contained page (inline CSS and SVG,
// no scripts, no external assets): a side-by-side table per scenario with the best value marked,
// and charts of throughput, server memory and CPU over time and latency CDFs, one line per
// report. The markup is well-formed XML so it also opens in strict tools.
func WriteHTML(w io.Writer, reps []*Report) error {
	var b strings.Builder
	labels := make([]string, len(reps))
	for i, r := range reps {
		labels[i] = r.Label
	}
	b.WriteString(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"/><meta name="viewport" content="width=device-width, initial-scale=1"/>`)
	fmt.Fprintf(&b, "<title>frontdoor bench: %s</title>\n", esc(strings.Join(labels, " vs ")))
	b.WriteString(`<style>
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:24px auto;max-width:1180px;padding:0 16px;color:#1d2330}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:32px 0 4px;border-bottom:1px solid #dde;padding-bottom:4px}
p.sub{color:#555;margin:2px 0 12px}table{border-collapse:collapse;margin:8px 0 12px}
td,th{padding:3px 10px;border-bottom:1px solid #eef;text-align:right}td:first-child,th:first-child{text-align:left}
th{background:#f4f6fa}td.best{font-weight:700;color:#0a7d32}.charts{display:flex;flex-wrap:wrap;gap:12px}
.swatch{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:4px;vertical-align:-1px}
.err{color:#a3261b}.small{font-size:12px;color:#666}svg text{font:11px system-ui,sans-serif;fill:#333}
</style></head><body>
`)
	fmt.Fprintf(&b, "<h1>frontdoor bench: %s</h1>\n", esc(strings.Join(labels, " vs ")))
	b.WriteString(`<p class="sub">Each section is one scenario. Bold green marks the better figure. Charts show one line per server; time runs from the start of the scenario. Latency is end to end, measured by the load generator on the same machine.</p>` + "\n")
	b.WriteString("<table><tr><th>server</th><th>target</th><th>started (UTC)</th><th>machine</th><th>load avg start → end</th><th>open-file limit server / client</th></tr>\n")
	for i, r := range reps {
		c := r.Conditions
		fmt.Fprintf(&b, "<tr><td>%s%s</td><td>%s</td><td>%s</td><td>%d CPU %s, %d MB, Linux %s</td><td>%s → %s</td><td>%s / %d</td></tr>\n",
			swatch(i), esc(r.Label), esc(r.Target), r.Started.UTC().Format("2006-01-02 15:04:05"), c.CPUs, esc(c.CPUModel),
			c.MemoryMB, esc(c.Kernel), esc(c.LoadAvgStart), esc(c.LoadAvgEnd), esc(orDash(c.ServerNoFile)), c.ClientNoFile)
	}
	b.WriteString("</table>\n")
	for _, r := range reps {
		for _, n := range r.Conditions.Notes {
			fmt.Fprintf(&b, "<p class=\"small\">%s: %s</p>\n", esc(r.Label), esc(n))
		}
		if r.Conditions.ClientSameHost {
			fmt.Fprintf(&b, "<p class=\"small\">%s: the load generator ran on the same machine (loopback), sharing its CPUs; its own CPU use is shown beside the server's.</p>\n", esc(r.Label))
		}
	}

	names, rows := comparison(reps)
	writeHeadlines(&b, reps, rows)
	for _, name := range names {
		var results []*Result
		title := ""
		for _, rep := range reps {
			res := rep.Result(name)
			results = append(results, res)
			if res != nil && title == "" {
				title = res.Title
			}
		}
		fmt.Fprintf(&b, "<h2 id=\"%s\">%s</h2>\n<p class=\"sub\">%s</p>\n", esc(name), esc(name), esc(title))
		b.WriteString("<table><tr><th>metric</th>")
		for i, rep := range reps {
			fmt.Fprintf(&b, "<th>%s%s</th>", swatch(i), esc(rep.Label))
		}
		b.WriteString("</tr>\n")
		for _, row := range rows[name] {
			fmt.Fprintf(&b, "<tr><td>%s</td>", esc(row.m.Label))
			writeValueCells(&b, row)
			b.WriteString("</tr>\n")
		}
		b.WriteString("</table>\n<div class=\"charts\">\n")
		writeScenarioCharts(&b, results)
		b.WriteString("</div>\n")
		for i, res := range results {
			if res == nil {
				continue
			}
			for _, e := range res.Errors {
				fmt.Fprintf(&b, "<p class=\"err small\">%s: %s</p>\n", esc(reps[i].Label), esc(e))
			}
		}
	}
	b.WriteString("<p class=\"small\">Written by <code>frontdoor bench</code>. The JSON reports hold every number shown here.</p>\n</body></html>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// headlines are the figures a reader compares first, one per question the suite answers.
var headlines = []struct{ scenario, key, label string }{
	{"connections", "server_bytes_per_socket", "server memory per idle subscribed socket"},
	{"connections", "handshakes_per_server_cpu_s", "connect+subscribe per server CPU second"},
	{"connections", "handshakes_per_s", "connect+subscribe per second"},
	{"fanout-throughput", "delivered_per_s", "fan-out deliveries per second"},
	{"fanout-throughput", "lost", "fan-out deliveries lost"},
	{"fanout-latency", "p99 publish→all subscribers", "p99 time for a message to reach every subscriber"},
	{"publish", "requests_per_s", "HTTP API publishes per second"},
	{"publish", "p99_ms", "HTTP API publish p99"},
	{"presence", "member_events_per_s", "presence member events per second"},
	{"churn", "cycles_per_s", "connect+subscribe+close cycles per second"},
}

func writeHeadlines(b *strings.Builder, reps []*Report, rows map[string][]compareRow) {
	var lines []string
	for _, h := range headlines {
		for _, row := range rows[h.scenario] {
			if row.m.Key != h.key {
				continue
			}
			var cells strings.Builder
			writeValueCells(&cells, row)
			lines = append(lines, fmt.Sprintf("<tr><td><a href=\"#%s\">%s</a></td>%s</tr>\n", esc(h.scenario), esc(h.label), cells.String()))
		}
	}
	if len(lines) == 0 {
		return
	}
	b.WriteString("<h2>Summary</h2>\n<table><tr><th>figure</th>")
	for i, rep := range reps {
		fmt.Fprintf(b, "<th>%s%s</th>", swatch(i), esc(rep.Label))
	}
	b.WriteString("</tr>\n" + strings.Join(lines, "") + "</table>\n")
}

func writeScenarioCharts(b *strings.Builder, results []*Result) {
	var rate, rss, cpu []chartLine
	rateLabel := ""
	for i, res := range results {
		if res == nil || len(res.Series) == 0 {
			continue
		}
		rateLabel = res.RateLabel
		var pr, pm, ps, pc [][2]float64
		for _, s := range res.Series {
			pr = append(pr, [2]float64{s.T, s.Rate})
			if s.ServerRSS > 0 {
				pm = append(pm, [2]float64{s.T, float64(s.ServerRSS) / (1 << 20)})
			}
			ps = append(ps, [2]float64{s.T, s.ServerCPU})
			pc = append(pc, [2]float64{s.T, s.ClientCPU})
		}
		rate = append(rate, chartLine{color: palette(i), pts: pr})
		if len(pm) > 0 {
			rss = append(rss, chartLine{color: palette(i), pts: pm})
			cpu = append(cpu, chartLine{color: palette(i), pts: ps})
		}
		cpu = append(cpu, chartLine{color: palette(i), dash: true, pts: pc})
	}
	svgChart(b, "throughput: "+rateLabel+" per second", "seconds", "/s", rate, false)
	if len(rss) > 0 {
		svgChart(b, "server RSS", "seconds", "MB", rss, false)
	}
	svgChart(b, "CPU, % of one core (solid server, dashed client)", "seconds", "%", cpu, false)
	// One CDF per latency distribution name, lines per report.
	seen := map[string]bool{}
	for _, res := range results {
		if res == nil {
			continue
		}
		for _, l := range res.Latencies {
			if seen[l.Name] {
				continue
			}
			seen[l.Name] = true
			var lines []chartLine
			for i, r2 := range results {
				if r2 == nil {
					continue
				}
				for _, l2 := range r2.Latencies {
					if l2.Name == l.Name && len(l2.CDF) > 0 {
						pts := make([][2]float64, 0, len(l2.CDF)+1)
						pts = append(pts, [2]float64{l2.Min, 0})
						for _, p := range l2.CDF {
							pts = append(pts, [2]float64{p.Ms, p.Fraction})
						}
						lines = append(lines, chartLine{color: palette(i), pts: pts})
					}
				}
			}
			if len(lines) > 0 {
				svgChart(b, "latency CDF: "+l.Name, "milliseconds (log)", "fraction", lines, true)
			}
		}
	}
}

type chartLine struct {
	color string
	dash  bool
	pts   [][2]float64
}

const (
	chartW, chartH                 = 560, 250
	padL, padR, padT, padB float64 = 58, 14, 26, 36
)

// svgChart draws a line chart; with logX the x axis is logarithmic (latencies span decades).
func svgChart(b *strings.Builder, title, xLabel, yLabel string, lines []chartLine, logX bool) {
	xmin, xmax, ymax := math.Inf(1), math.Inf(-1), 0.0
	for _, l := range lines {
		for _, p := range l.pts {
			x := p[0]
			if logX {
				x = math.Max(x, 0.001)
			}
			xmin, xmax, ymax = math.Min(xmin, x), math.Max(xmax, x), math.Max(ymax, p[1])
		}
	}
	if math.IsInf(xmin, 0) {
		return
	}
	fx := func(x float64) float64 { return x }
	if logX {
		fx = math.Log10
		xmin = math.Pow(10, math.Floor(math.Log10(xmin)))
		xmax = math.Pow(10, math.Ceil(math.Log10(xmax)))
	} else {
		xmin = 0
	}
	if xmax <= xmin {
		xmax = xmin + 1
	}
	ystep := niceStep(ymax / 4)
	ymax = math.Max(ystep, math.Ceil(ymax/ystep)*ystep)
	pw, ph := chartW-padL-padR, chartH-padT-padB
	px := func(x float64) float64 {
		if logX {
			x = math.Max(x, xmin)
		}
		return padL + (fx(x)-fx(xmin))/(fx(xmax)-fx(xmin))*pw
	}
	py := func(y float64) float64 { return padT + ph - y/ymax*ph }
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img">`, chartW, chartH, chartW, chartH)
	fmt.Fprintf(b, `<title>%s</title><rect width="100%%" height="100%%" fill="#fff" stroke="#dde"/>`, esc(title))
	fmt.Fprintf(b, `<text x="%g" y="16" style="font-weight:600">%s</text>`, padL, esc(title))
	for y := 0.0; y <= ymax+ystep/2; y += ystep {
		fmt.Fprintf(b, `<line x1="%g" x2="%g" y1="%.1f" y2="%.1f" stroke="#eef"/><text x="%g" y="%.1f" text-anchor="end">%s</text>`,
			padL, padL+pw, py(y), py(y), padL-4, py(y)+4, esc(tickLabel(y)))
	}
	if logX {
		for x := xmin; x <= xmax*1.001; x *= 10 {
			fmt.Fprintf(b, `<line x1="%.1f" x2="%.1f" y1="%g" y2="%g" stroke="#eef"/><text x="%.1f" y="%g" text-anchor="middle">%s</text>`,
				px(x), px(x), padT, padT+ph, px(x), padT+ph+14, esc(tickLabel(x)))
		}
	} else {
		step := niceStep(xmax / 6)
		for x := 0.0; x <= xmax+step/2; x += step {
			fmt.Fprintf(b, `<line x1="%.1f" x2="%.1f" y1="%g" y2="%g" stroke="#eef"/><text x="%.1f" y="%g" text-anchor="middle">%s</text>`,
				px(x), px(x), padT, padT+ph, px(x), padT+ph+14, esc(tickLabel(x)))
		}
	}
	fmt.Fprintf(b, `<text x="%g" y="%d" text-anchor="middle">%s</text>`, padL+pw/2, chartH-4, esc(xLabel))
	fmt.Fprintf(b, `<text x="12" y="%g" transform="rotate(-90 12 %g)" text-anchor="middle">%s</text>`, padT+ph/2, padT+ph/2, esc(yLabel))
	for _, l := range lines {
		var pts strings.Builder
		for i, p := range l.pts {
			if i > 0 {
				pts.WriteByte(' ')
			}
			fmt.Fprintf(&pts, "%.1f,%.1f", px(p[0]), py(p[1]))
		}
		dash := ""
		if l.dash {
			dash = ` stroke-dasharray="5 3"`
		}
		fmt.Fprintf(b, `<polyline fill="none" stroke="%s" stroke-width="1.8"%s points="%s"/>`, l.color, dash, pts.String())
	}
	b.WriteString("</svg>\n")
}

// niceStep rounds a raw step up to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 || math.IsNaN(raw) || math.IsInf(raw, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

func tickLabel(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%gM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%gk", v/1e3)
	default:
		return fmt.Sprintf("%g", math.Round(v*1000)/1000)
	}
}

var colors = []string{"#1f6feb", "#d9480f", "#2b8a3e", "#7048e8", "#c2255c", "#0b7285"}

func palette(i int) string { return colors[i%len(colors)] }

func swatch(i int) string {
	return fmt.Sprintf(`<span class="swatch" style="background:%s"></span>`, palette(i))
}

func esc(s string) string { return html.EscapeString(s) }

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

// writeValueCells writes one <td> per report for row, the best one marked, "–" where missing.
func writeValueCells(b *strings.Builder, row compareRow) {
	for j, v := range row.values {
		cls, s := "", "–"
		if v != nil {
			s = formatValue(*v, row.m.Unit)
		}
		if j == row.best {
			cls = ` class="best"`
		}
		fmt.Fprintf(b, "<td%s>%s</td>", cls, esc(s))
	}
}
