package bench

import (
	"bytes"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func sampleReport(label string, delivered float64) *Report {
	var h Histogram
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * 10 * time.Microsecond)
	}
	res := Result{Scenario: "fanout", Name: "fanout-throughput", Title: "10 subscribers <&> \"quoted\"", Seconds: 2, RateLabel: "deliveries",
		Params: params("subscribers", 10)}
	res.add("delivered_per_s", "deliveries per second", delivered, "/s", "higher")
	res.add("lost", "lost", 0, "", "lower")
	res.Latencies = []Latency{h.Summary("publish→delivery")}
	for i := 1; i <= 8; i++ {
		res.Series = append(res.Series, Sample{T: float64(i) / 4, Rate: delivered, ServerRSS: 20 << 20, ServerCPU: 50, ClientCPU: 30})
	}
	res.Server = Usage{CPUSeconds: 1, CPUPercent: 50, RSSStart: 19 << 20, RSSPeak: 21 << 20, RSSEnd: 20 << 20}
	res.Errors = []string{"dial: connection refused <x> (x2)"}
	return &Report{Tool: toolName, Label: label, Target: "ws://127.0.0.1:1", Started: time.Unix(1700000000, 0),
		Conditions: Conditions{CPUs: 2, Notes: []string{"a note & more"}, ClientSameHost: true}, Results: []Result{res}}
}

// wellFormed parses the page as XML: every tag closed, every entity valid.
func wellFormed(t *testing.T, page []byte) (svgs int) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(page))
	d.Strict = true
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return svgs
		}
		if err != nil {
			t.Fatalf("HTML not well-formed: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "svg" {
			svgs++
		}
	}
}

func TestWriteHTMLWellFormed(t *testing.T) {
	for _, reps := range [][]*Report{{sampleReport("frontdoor", 400000)}, {sampleReport("frontdoor", 400000), sampleReport("soketi", 68000)}} {
		var b bytes.Buffer
		if err := WriteHTML(&b, reps); err != nil {
			t.Fatal(err)
		}
		page := b.Bytes()
		// throughput, RSS, CPU and one latency CDF per scenario.
		if n := wellFormed(t, page); n != 4 {
			t.Errorf("%d charts, want 4", n)
		}
		for _, want := range []string{"10 subscribers &lt;&amp;&gt;", "deliveries per second", "a note &amp; more", "connection refused &lt;x&gt;"} {
			if !bytes.Contains(page, []byte(want)) {
				t.Errorf("page lacks %q", want)
			}
		}
		if bytes.Contains(page, []byte("<script")) || bytes.Contains(page, []byte("src=")) || bytes.Contains(page, []byte(`href="http`)) {
			t.Error("page is not self-contained")
		}
		if len(reps) == 2 && bytes.Count(page, []byte(`<td class="best">400,000 /s</td>`)) != 2 {
			t.Error("better delivery rate not marked in the summary and the scenario table")
		}
		if !bytes.Contains(page, []byte(`<a href="#fanout-throughput">fan-out deliveries per second</a>`)) {
			t.Error("summary lacks the fan-out headline")
		}
	}
}

func TestReportJSONRoundTripAndCompare(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	for _, rep := range []*Report{sampleReport("frontdoor", 400000), sampleReport("soketi", 68000)} {
		p := filepath.Join(dir, rep.Label+".json")
		if err := writeFile(p, rep.WriteJSON); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	back, err := ReadReport(paths[0])
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := back.Results[0].Metric("delivered_per_s"); !ok || v != 400000 || back.Results[0].Latencies[0].Count != 1000 {
		t.Fatalf("round trip lost data: %+v", back.Results[0])
	}
	if err := os.WriteFile(filepath.Join(dir, "other.json"), []byte(`{"tool":"x"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadReport(filepath.Join(dir, "other.json")); err == nil {
		t.Fatal("foreign JSON accepted as a report")
	}
	var out, errOut bytes.Buffer
	htmlPath := filepath.Join(dir, "c.html")
	if code := Main(append([]string{"compare", "--html", htmlPath}, paths...), &out, &errOut); code != 0 {
		t.Fatalf("compare exit %d: %s", code, errOut.String())
	}
	text := out.String()
	for _, want := range []string{"frontdoor", "soketi", "*400,000 /s", "68,000 /s"} {
		if !strings.Contains(text, want) {
			t.Errorf("comparison lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "*0") {
		t.Errorf("a tie was marked as best:\n%s", text)
	}
	page, err := os.ReadFile(htmlPath)
	if err != nil {
		t.Fatal(err)
	}
	wellFormed(t, page)
}

func TestWriteText(t *testing.T) {
	var b bytes.Buffer
	sampleReport("frontdoor", 1234567).WriteText(&b)
	for _, want := range []string{"== fanout-throughput", "deliveries per second", "1,234,567 /s", "publish→delivery", "note: a note & more", "server RSS start/peak/end"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, b.String())
		}
	}
}

func TestFormatValue(t *testing.T) {
	for _, tt := range []struct {
		v    float64
		unit string
		want string
	}{{0, "", "0"}, {1234567, "/s", "1,234,567 /s"}, {0.123, "ms", "0.12 ms"}, {12.34, "KB", "12.3 KB"}, {3.2, "KB", "3.20 KB"}, {-1500, "", "-1,500"}, {999.6, "/s", "1,000 /s"}} {
		if got := formatValue(tt.v, tt.unit); got != tt.want {
			t.Errorf("formatValue(%v, %q) = %q, want %q", tt.v, tt.unit, got, tt.want)
		}
	}
}

func TestPayloadRoundTrip(t *testing.T) {
	now := time.Unix(1700000000, 123456789)
	p := benchPayload(3, 42, now, 100)
	if len(p) != 100 {
		t.Fatalf("payload %d bytes, want 100", len(p))
	}
	// As frontdoor, Soketi and Reverb frame it: data is a JSON string carrying the payload verbatim.
	for _, frame := range []string{
		`{"event":"bench","channel":"c","data":"` + p + `"}`,
		`{"channel":"c","data":"` + p + `","event":"bench"}`,
	} {
		stream, seq, ts, ok := parsePayload([]byte(frame))
		if !ok || stream != 3 || seq != 42 || ts != now.UnixNano() {
			t.Fatalf("parse %q: %d %d %d %v", frame, stream, seq, ts, ok)
		}
	}
	for _, bad := range []string{`{"data":"B1 x 1 2 "}`, `{"data":"B1 1 2"}`, `{"data":"B1 0 1 2x"}`, `{"data":"B1 1 2 "}`, `{"event":"pusher:pong","data":"{}"}`} {
		if _, _, _, ok := parsePayload([]byte(bad)); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

func FuzzParsePayload(f *testing.F) {
	f.Add([]byte(`{"event":"bench","data":"B1 0 7 1700000000000000000 xxxx"}`))
	f.Add([]byte(`{"data":"B1 1 99999999999999999999 1 "}`))
	f.Add([]byte(`"data":"B1 `))
	f.Fuzz(func(t *testing.T, b []byte) {
		stream, seq, ts, ok := parsePayload(b)
		if ok && (stream < 0 || seq < 0 || ts < 0) {
			t.Fatalf("negative values from %q: %d %d %d", b, stream, seq, ts)
		}
	})
}
