package proxy

import (
	"encoding/json"
	"html"
	"net/http"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
)

// TestRequestIDFromClientIsCheckedAndEscaped: an X-Request-Id that is not an id (markup,
// quotes, too long) is replaced by a generated one, in the response, the error page and on the
// way upstream; a well-formed one is kept. Error pages are valid HTML and JSON either way.
func TestRequestIDFromClientIsCheckedAndEscaped(t *testing.T) {
	seen := make(chan string, 8)
	up := startGoUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Get("X-Request-Id")
	}))
	h, err := New(Config{Root: root(t), Upstreams: []string{up}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	front := serveFront(t, h)
	bad := []string{`<script>alert(1)</script>`, `a"b`, `x y`, strings.Repeat("a", 129), "café"}
	for _, id := range bad {
		for _, accept := range []string{"text/html", "application/json"} {
			req := mustReq(t, "GET", front+"/.env", nil) // 404 from the error page
			req.Header["X-Request-Id"] = []string{id}
			req.Header.Set("Accept", accept)
			resp, b := do(t, req)
			got := resp.Header.Get("X-Request-Id")
			if resp.StatusCode != 404 || got == id || len(got) != 24 || !strings.Contains(string(b), got) {
				t.Errorf("id %q, %s: %d X-Request-Id %q %q", id, accept, resp.StatusCode, got, b)
			}
			if strings.Contains(string(b), "<script>") || strings.Contains(string(b), `a"b`) {
				t.Errorf("id %q reached the page: %q", id, b)
			}
			if accept == "application/json" {
				var page struct {
					RequestID string `json:"request_id"`
				}
				if err := json.Unmarshal(b, &page); err != nil || page.RequestID != got {
					t.Errorf("id %q: JSON page %q: %v", id, b, err)
				}
			}
		}
		req := mustReq(t, "GET", front+"/page", nil)
		req.Header["X-Request-Id"] = []string{id}
		resp, _ := do(t, req)
		if up := <-seen; up == id || up != resp.Header.Get("X-Request-Id") {
			t.Errorf("id %q: upstream saw %q, response says %q", id, up, resp.Header.Get("X-Request-Id"))
		}
	}
	good := "trace-1.2_X" + strings.Repeat("z", 117) // 128 bytes
	req := mustReq(t, "GET", front+"/.env", nil)
	req.Header.Set("X-Request-Id", good)
	if resp, b := do(t, req); resp.Header.Get("X-Request-Id") != good || !strings.Contains(string(b), good) {
		t.Errorf("a well-formed id was not kept: %q %q", resp.Header.Get("X-Request-Id"), b)
	}
}

// TestErrorPageEscapes: whatever id reaches errorPage, the HTML page escapes it and the JSON
// page encodes it.
func TestErrorPageEscapes(t *testing.T) {
	h := &Handler{refusals: newLogLimiter()}
	id := `"><script>alert(1)</script>`
	var ctx fasthttp.RequestCtx
	ctx.Response.Header.Set("X-Request-Id", id)
	h.errorPage(&ctx, 502, "Bad Gateway")
	if b := string(ctx.Response.Body()); strings.Contains(b, "<script>") || !strings.Contains(b, "&lt;script&gt;") {
		t.Errorf("HTML page: %q", b)
	}
	ctx.Request.Header.Set("Accept", "application/json")
	ctx.Response.Header.Set("X-Request-Id", id)
	h.errorPage(&ctx, 502, "Bad Gateway")
	var page struct {
		Message   string `json:"message"`
		RequestID string `json:"request_id"`
	}
	if err := json.Unmarshal(ctx.Response.Body(), &page); err != nil || page.RequestID != id || page.Message != "Bad Gateway" {
		t.Errorf("JSON page %q: %v", ctx.Response.Body(), err)
	}
}

// TestErrorPageJSON: an error page is JSON for the clients that cannot read HTML: Laravel's
// expectsJson() rule (Accept with JSON, X-Requested-With: XMLHttpRequest) and requests that send
// JSON (the Pusher SDKs' API calls, which send no Accept); HTML for a browser's page request.
func TestErrorPageJSON(t *testing.T) {
	h := &Handler{refusals: newLogLimiter()}
	for _, c := range []struct {
		header, value string
		json          bool
	}{
		{"Accept", "text/html,application/xhtml+xml,*/*;q=0.8", false},
		{"Accept", "application/json", true},
		{"X-Requested-With", "XMLHttpRequest", true},
		{"Content-Type", "application/json", true},
		{"Content-Type", "application/x-www-form-urlencoded", false},
	} {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.Set(c.header, c.value)
		h.errorPage(&ctx, 421, "Misdirected Request")
		if got := strings.HasPrefix(string(ctx.Response.Header.ContentType()), "application/json"); got != c.json {
			t.Errorf("%s: %s: %s %q", c.header, c.value, ctx.Response.Header.ContentType(), ctx.Response.Body())
		}
	}
}

func FuzzValidRequestID(f *testing.F) {
	for _, s := range []string{"abc", "trace-1.2_X", "", "<script>", `a"b`, strings.Repeat("a", 129)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if !validRequestID([]byte(id)) {
			return
		}
		if len(id) == 0 || len(id) > 128 || html.EscapeString(id) != id || strings.ContainsAny(id, "\"\\ \r\n\x00") {
			t.Fatalf("validRequestID accepted %q", id)
		}
	})
}
