package doctor

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/fasthttp/websocket"
)

// closeMeaning explains the Pusher close codes a handshake can end with (pusher-protocol.md
// §1.2 and §4), with the finding code and the fix for each.
var closeMeaning = map[int]struct{ code, msg, fix string }{
	4000: {"ws-tls-required", "the app accepts only TLS connections (wss://)", "REVERB_SCHEME=https"},
	4001: {"ws-app-key-unknown", "the server does not know this app key: the key in the .env differs from the key the server was started with", "start the server with the .env's key (frontdoor serve --env-file .env), or copy the server's key into REVERB_APP_KEY and rebuild the front end (npm run build)"},
	4003: {"ws-app-disabled", "the app is disabled on the server", "remove disabled: true from the app's configuration"},
	4004: {"ws-over-quota", "the app is at its connection limit (max_connections)", "raise REVERB_APP_MAX_CONNECTIONS"},
	4007: {"ws-refused", "the server does not support protocol 7", ""},
	4009: {"ws-origin-refused", "the server refused the connection's Origin (allowed origins)", "add APP_URL's host to REVERB_ALLOWED_ORIGINS (or FRONTDOOR_ALLOWED_ORIGINS)"},
	4100: {"ws-over-capacity", "the server is over capacity", "check the server's connection limit and file descriptor limit"},
}

// checkWebSocket connects as pusher-js does (pusher-protocol.md §1.1) and expects
// pusher:connection_established; a refusal is explained by its close code.
func (lc *liveCheck) checkWebSocket(ctx context.Context, target *url.URL, tlsConf *tls.Config, key string) {
	scheme := "ws"
	if target.Scheme == "https" {
		scheme = "wss"
	}
	wsURL := fmt.Sprintf("%s://%s%s/app/%s?protocol=7&client=frontdoor-doctor&version=1.0&flash=false",
		scheme, hostPort(target), target.Path, url.PathEscape(key))
	header := http.Header{}
	origin := ""
	if u, err := url.Parse(lc.p.val("APP_URL")); err == nil && u.Host != "" {
		origin = u.Scheme + "://" + u.Host
		header.Set("Origin", origin)
	}
	dialer := websocket.Dialer{HandshakeTimeout: lc.opts.Timeout, TLSClientConfig: tlsConf}
	ctx, cancel := context.WithTimeout(ctx, lc.opts.Timeout)
	defer cancel()
	conn, resp, err := dialer.DialContext(ctx, wsURL, header)
	if err != nil {
		if resp != nil {
			lc.add(Error, "ws-handshake-failed", fmt.Sprintf("the WebSocket upgrade at %s/app/{key} was answered with HTTP %d, not 101: that path does not reach a Pusher-protocol server", target.Path, resp.StatusCode),
				"route /app/ (and /apps/) to the WebSocket server; with frontdoor in front both are built in")
		} else {
			lc.add(Error, "ws-handshake-failed", fmt.Sprintf("WebSocket handshake to %s failed: %v", wsURL, err), "")
		}
		return
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(lc.opts.Timeout))

	var pusherErr int
	for {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			code := pusherErr
			if errors.As(err, &ce) {
				code = ce.Code
			}
			lc.refused(code, key, origin, err)
			return
		}
		var frame struct {
			Event string `json:"event"`
			Data  string `json:"data"`
		}
		if json.Unmarshal(msg, &frame) != nil {
			lc.add(Error, "ws-bad-frame", fmt.Sprintf("the server's first frame is not a Pusher event: %.200q", msg), "")
			return
		}
		switch frame.Event {
		case "pusher:connection_established":
			var est struct {
				SocketID        string `json:"socket_id"`
				ActivityTimeout int    `json:"activity_timeout"`
			}
			_ = json.Unmarshal([]byte(frame.Data), &est)
			lc.add(Info, "ws-ok", fmt.Sprintf("WebSocket handshake with key %q accepted (socket_id %s, activity_timeout %ds)", key, est.SocketID, est.ActivityTimeout), "")
			_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
			return
		case "pusher:error":
			var pe struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			}
			_ = json.Unmarshal([]byte(frame.Data), &pe)
			pusherErr = pe.Code
			// The close that follows carries the same code; read it to be sure.
		default:
			lc.add(Error, "ws-bad-frame", fmt.Sprintf("expected pusher:connection_established first, got %q", frame.Event), "")
			return
		}
	}
}

func (lc *liveCheck) refused(code int, key, origin string, err error) {
	m, ok := closeMeaning[code]
	if !ok {
		lc.add(Error, "ws-refused", fmt.Sprintf("the server closed the WebSocket before connection_established (code %d): %v", code, err), "")
		return
	}
	msg := fmt.Sprintf("WebSocket refused with %d: %s", code, m.msg)
	switch code {
	case 4001:
		msg += fmt.Sprintf(" (key %q)", key)
	case 4009:
		msg += fmt.Sprintf(" (Origin %q, from APP_URL)", origin)
	}
	lc.add(Error, m.code, msg, m.fix)
}
