//go:build linux

// The browser tests run headless Chromium as a process group tied to the test (Pdeathsig):
// Linux only, like the CI that runs them.

package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/frontdoorhq/frontdoor/tls/pebbletest"
)

// devtools is a minimal Chrome DevTools Protocol client: enough to evaluate an expression in a
// page (Runtime.evaluate) and read the result back as JSON.
type devtools struct {
	conn *websocket.Conn
	id   atomic.Int64
}

// devtoolsPort reads the port Chromium chose for --remote-debugging-port=0; it writes it as the
// first line of DevToolsActivePort in the profile directory once the endpoint is up.
func devtoolsPort(profile string) (string, bool) {
	raw, err := os.ReadFile(filepath.Join(profile, "DevToolsActivePort"))
	if err != nil {
		return "", false
	}
	port, _, _ := strings.Cut(string(raw), "\n")
	return port, port != ""
}

// attach connects to the first page target whose URL contains urlPart.
func attach(ctx context.Context, port, urlPart string) (*devtools, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:"+port+"/json/list", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var targets []struct {
		Type, URL            string
		WebSocketDebuggerURL string `json:"webSocketDebuggerUrl"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&targets); err != nil {
		return nil, err
	}
	for _, t := range targets {
		if t.Type == "page" && strings.Contains(t.URL, urlPart) {
			c, _, err := websocket.DefaultDialer.DialContext(ctx, t.WebSocketDebuggerURL, nil)
			if err != nil {
				return nil, err
			}
			return &devtools{conn: c}, nil
		}
	}
	return nil, fmt.Errorf("no page target with %q among %d targets", urlPart, len(targets))
}

// call sends one DevTools command and unmarshals its result into out.
func (d *devtools) call(method string, params map[string]any, out any) error {
	id := d.id.Add(1)
	d.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := d.conn.WriteJSON(map[string]any{"id": id, "method": method, "params": params}); err != nil {
		return err
	}
	d.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		var reply struct {
			ID     int64           `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := d.conn.ReadJSON(&reply); err != nil {
			return err
		}
		if reply.ID != id {
			continue // an event or a late reply
		}
		if reply.Error != nil {
			return fmt.Errorf("devtools: %s: %s", method, reply.Error.Message)
		}
		return json.Unmarshal(reply.Result, out)
	}
}

// eval runs expression in the page and unmarshals its (JSON-serialisable) value into out.
func (d *devtools) eval(expression string, out any) error {
	var res struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	if err := d.call("Runtime.evaluate", map[string]any{"expression": expression, "returnByValue": true}, &res); err != nil {
		return err
	}
	if ex := res.ExceptionDetails; ex != nil {
		return fmt.Errorf("page threw: %s", ex.Text)
	}
	if len(res.Result.Value) == 0 {
		return nil // undefined: the page has not got that far yet
	}
	return json.Unmarshal(res.Result.Value, out)
}

func (d *devtools) close() { d.conn.Close() }

// attachPage waits (pageTimeout) for the Chromium started with profile to show path and attaches
// DevTools to it; the test fails with the browser's log when it does not.
func attachPage(t *testing.T, ctx context.Context, profile, path string, browserLog func() string) *devtools {
	t.Helper()
	var dt *devtools
	var err error
	if !pebbletest.WaitFor(ctx, pageTimeout, func() bool {
		port, ok := devtoolsPort(profile)
		if !ok {
			return false
		}
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		dt, err = attach(actx, port, path)
		return err == nil
	}) {
		t.Fatalf("no DevTools page target: %v\nchromium:\n%s", err, browserLog())
	}
	return dt
}
