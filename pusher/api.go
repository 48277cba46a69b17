package pusher

import (
	"bytes"
	"encoding/json"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
)

// apiRequest is one authenticated HTTP API call, handed to an endpoint handler.
type apiRequest struct {
	ctx  *fasthttp.RequestCtx
	app  *App
	body []byte
	q    url.Values
}

// HandleAPI serves {prefix}/apps/{id}/... (§8): 404 unknown app, 405 wrong method, 413 body over
// the limit, 401 signature, then the endpoint. Every error has a JSON body {"error": "..."}.
func (s *Server) HandleAPI(ctx *fasthttp.RequestCtx) {
	full := string(ctx.Path())
	rest := strings.TrimPrefix(full, s.prefix+"/apps/")
	id, route, _ := strings.Cut(rest, "/")
	endpoint, method, handler := s.route(route)
	var body []byte
	status := s.serveAPI(ctx, id, route, endpoint, method, handler, &body)
	s.stats.apiRequest(endpoint, status)
	if s.trace {
		s.traceAPI(ctx, id, endpoint, body, status)
	}
}

// The body read (within max_request_size) is left in *read for the trace line.
func (s *Server) serveAPI(ctx *fasthttp.RequestCtx, id, route, endpoint, method string, h func(*apiRequest) int, read *[]byte) int {
	app := s.appByID(id)
	if app == nil {
		return jsonError(ctx, fasthttp.StatusNotFound, "Unknown app id "+truncate(id, 64))
	}
	if h == nil {
		return jsonError(ctx, fasthttp.StatusNotFound, "Unknown API endpoint /apps/"+id+"/"+truncate(route, 100))
	}
	if string(ctx.Method()) != method {
		ctx.Response.Header.Set("Allow", method)
		return jsonError(ctx, fasthttp.StatusMethodNotAllowed, endpoint+" accepts "+method+" only")
	}
	cfg := app.config()
	body, tooBig := readBody(ctx, cfg.MaxRequestBytes)
	*read = body
	if tooBig {
		return jsonError(ctx, fasthttp.StatusRequestEntityTooLarge, "Request body over "+itoa(cfg.MaxRequestBytes)+" bytes")
	}
	q := url.Values{}
	for k, v := range ctx.QueryArgs().All() {
		// The string to sign lower-cases keys and joins repeated ones (§8.2), while the handlers
		// read exact, single keys: a signed filter_by_prefix replayed as Filter_By_Prefix, or a
		// second info=, would verify and then be read differently. The SDKs send neither.
		key := string(k)
		switch {
		case key != strings.ToLower(key):
			return s.apiRefused(ctx, cfg.ID, endpoint, "api_query_key", fasthttp.StatusBadRequest,
				"Query parameter "+strconv.Quote(truncate(key, 64))+" is not lower case; the signature covers keys lower-cased, so only lower-case keys are accepted")
		case q.Has(key):
			return s.apiRefused(ctx, cfg.ID, endpoint, "api_query_key", fasthttp.StatusBadRequest,
				"Query parameter "+strconv.Quote(truncate(key, 64))+" is given more than once")
		}
		q.Add(key, string(v))
	}
	// The SDKs sign the path without the mount prefix (§8.2).
	signedPath := "/apps/" + id + "/" + route
	if err := verifyAPIRequest(cfg.Key, cfg.Secret, method, signedPath, q, body, time.Now()); err != nil {
		return s.apiRefused(ctx, cfg.ID, endpoint, "api_signature", fasthttp.StatusUnauthorized, err.Error())
	}
	return h(&apiRequest{ctx: ctx, app: app, body: body, q: q})
}

// apiRefused answers a refused API request with a JSON error, counts it by reason and logs it
// rate-limited. The log line names the reason only: the message may quote the client's
// signature.
func (s *Server) apiRefused(ctx *fasthttp.RequestCtx, app, endpoint, reason string, status int, msg string) int {
	s.stats.refused(reason)
	s.rlog.event(zerolog.InfoLevel, reason).Str("reason", reason).Str("app", app).Str("endpoint", endpoint).
		Str("remote", ctx.RemoteAddr().String()).Int("status", status).Msg("API request refused")
	return jsonError(ctx, status, msg)
}

// route maps the path after /apps/{id}/ to an endpoint (Reverb's controller list, §8).
func (s *Server) route(route string) (endpoint, method string, h func(*apiRequest) int) {
	switch {
	case route == "events":
		return "events", "POST", s.apiEvents
	case route == "batch_events":
		return "batch_events", "POST", s.apiBatchEvents
	case route == "channels":
		return "channels", "GET", s.apiChannels
	case route == "connections":
		return "connections", "GET", s.apiConnections
	case strings.HasPrefix(route, "channels/") && strings.HasSuffix(route, "/users"):
		return "channel_users", "GET", s.apiChannelUsers
	case strings.HasPrefix(route, "channels/"):
		return "channel", "GET", s.apiChannel
	case strings.HasPrefix(route, "users/") && strings.HasSuffix(route, "/terminate_connections"):
		return "terminate_connections", "POST", s.apiTerminate
	}
	return "unknown", "", nil
}

// readBody reads at most limit bytes; a larger body is refused without being read whole.
func readBody(ctx *fasthttp.RequestCtx, limit int) ([]byte, bool) {
	if cl := ctx.Request.Header.ContentLength(); cl > limit {
		return nil, true
	}
	if stream := ctx.RequestBodyStream(); stream != nil {
		b, err := io.ReadAll(io.LimitReader(stream, int64(limit)+1))
		if err != nil || len(b) > limit {
			return nil, true
		}
		return b, false
	}
	b := ctx.PostBody()
	return b, len(b) > limit
}

func jsonError(ctx *fasthttp.RequestCtx, status int, msg string) int {
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	b := append(appendJSONString([]byte(`{"error":`), msg), "}\n"...)
	ctx.SetBody(b)
	return status
}

func jsonOK(ctx *fasthttp.RequestCtx, v any) int {
	ctx.SetContentType("application/json")
	b, _ := json.Marshal(v)
	ctx.SetBody(append(b, '\n'))
	return fasthttp.StatusOK
}

func itoa(n int) string { return string(appendInt(nil, n)) }

// decodeStrict parses a JSON object body; any other shape is a 400.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return io.ErrUnexpectedEOF
	}
	return nil
}
