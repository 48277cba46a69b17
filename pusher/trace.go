package pusher

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/frontdoorhq/frontdoor/pusher/internal/ws"
)

// Frame and API tracing: at log level trace (`serve --debug`), what `reverb:start --debug` shows.
// Every WebSocket frame in (OnMessage) and out (the socket send path), and every API call, is
// logged with its app, socket id, event and channel, and the frame's JSON with signatures and
// secrets redacted (redactJSON). A frame fanned out to many sockets is logged once, with its
// recipient count, never per recipient.
//
// Off, it costs one bool test (Server.trace) on each path before anything is formatted.

// traceMaxBytes bounds the JSON one trace line quotes: frames may be up to max_message_size and
// API bodies up to max_request_size.
const traceMaxBytes = 2048

// traceIn logs a frame the client sent; the caller checked s.srv.trace.
func (s *Socket) traceIn(payload []byte) {
	body, event, channel := redactJSON(payload)
	s.srv.log.Trace().Str("app", s.app.config().ID).Str("socket_id", s.id).Str("event", event).
		Str("channel", channel).Str("frame", body).Msg("frame in")
}

// traceOut logs a frame sent to this socket alone; the caller checked s.srv.trace.
func (s *Socket) traceOut(frame []byte) {
	body, event, channel := redactJSON(ws.Payload(frame))
	s.srv.log.Trace().Str("app", s.app.config().ID).Str("socket_id", s.id).Str("event", event).
		Str("channel", channel).Str("frame", body).Msg("frame out")
}

// traceFanout logs a frame delivered to recipients sockets at once (publish, client event,
// member_added…); the caller checked s.trace.
func (s *Server) traceFanout(app *App, frame []byte, recipients int) {
	body, event, channel := redactJSON(ws.Payload(frame))
	s.log.Trace().Str("app", app.config().ID).Str("event", event).Str("channel", channel).
		Int("recipients", recipients).Str("frame", body).Msg("frame out (fan-out)")
}

// traceAPI logs one HTTP API call with its answer; the caller checked s.trace. body is what the
// API read (never more than max_request_size: nothing is read for the log). The query's
// auth_key and auth_signature and the body's secrets are redacted.
func (s *Server) traceAPI(ctx *fasthttp.RequestCtx, app, endpoint string, body []byte, status int) {
	q := ctx.QueryArgs()
	query := make([]byte, 0, 128)
	for k, v := range q.All() {
		if len(query) > 0 {
			query = append(query, '&')
		}
		query = append(query, k...)
		query = append(query, '=')
		if sensitiveKey(string(k)) {
			query = append(query, redacted...)
		} else {
			query = append(query, v...)
		}
	}
	logged, _, _ := redactJSON(body)
	s.log.Trace().Str("app", truncate(app, 64)).Bytes("method", ctx.Method()).Bytes("path", ctx.Path()).Str("endpoint", endpoint).
		Str("query", truncate(string(query), traceMaxBytes)).Str("body", logged).Int("status", status).
		Str("response", truncate(string(ctx.Response.Body()), traceMaxBytes)).Msg("API call")
}

const redacted = "[redacted]"

// sensitiveKey names the fields whose values never reach a log: the auth of pusher:subscribe and
// pusher:signin (key:signature), the API's auth_signature and auth_key, and anything called a
// secret. channel_data and user_data are the app's user info and stay.
func sensitiveKey(k string) bool {
	k = strings.ToLower(k)
	return k == "auth" || k == "auth_signature" || k == "auth_key" || strings.Contains(k, "secret")
}

// redactJSON returns raw as JSON with the values of sensitive keys replaced, at any depth and
// inside JSON carried as a string (the data of a frame from an SDK that sends it encoded), cut
// to traceMaxBytes, and the frame's event and channel (the top-level ones, or data's channel, as
// in pusher:subscribe). Input that is not JSON is quoted only when it cannot hold a secret.
func redactJSON(raw []byte) (out, event, channel string) {
	if len(raw) == 0 {
		return "", "", ""
	}
	v, ok := decodeJSON(raw)
	if !ok {
		lower := bytes.ToLower(raw)
		if bytes.Contains(lower, []byte("auth")) || bytes.Contains(lower, []byte("secret")) {
			return "[not JSON: " + itoa(len(raw)) + " bytes, redacted]", "", ""
		}
		return truncate(string(raw), traceMaxBytes), "", ""
	}
	v, _ = redactValue(v)
	if m, ok := v.(map[string]any); ok {
		event, _ = m["event"].(string)
		channel, _ = m["channel"].(string)
		if d, ok := m["data"].(map[string]any); ok && channel == "" {
			channel, _ = d["channel"].(string)
		}
	}
	return truncate(encodeJSON(v), traceMaxBytes), truncate(event, 200), truncate(channel, 200)
}

func decodeJSON(raw []byte) (any, bool) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if d.Decode(&v) != nil || d.More() {
		return nil, false
	}
	return v, true
}

func encodeJSON(v any) string {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	if e.Encode(v) != nil {
		return ""
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// redactValue replaces sensitive values in v; changed reports whether it did, so strings that
// hold JSON are re-encoded only when something in them was redacted.
func redactValue(v any) (out any, changed bool) {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			if sensitiveKey(k) {
				t[k], changed = redacted, true
				continue
			}
			if y, c := redactValue(x); c {
				t[k], changed = y, true
			}
		}
		return t, changed
	case []any:
		for i, x := range t {
			if y, c := redactValue(x); c {
				t[i], changed = y, true
			}
		}
		return t, changed
	case string:
		s := strings.TrimSpace(t)
		if len(s) < 2 || s[0] != '{' && s[0] != '[' {
			return t, false
		}
		inner, ok := decodeJSON([]byte(s))
		if !ok {
			// Meant as JSON but broken: it may still hold a signature the client sent.
			if l := strings.ToLower(s); strings.Contains(l, "auth") || strings.Contains(l, "secret") {
				return redacted, true
			}
			return t, false
		}
		if inner, changed = redactValue(inner); changed {
			return encodeJSON(inner), true
		}
		return t, false
	}
	return v, false
}
