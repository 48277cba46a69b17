package pusher

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// eventBody is an API event (§8.3). Data is raw so a non-string data can be refused with 400.
type eventBody struct {
	Name     string          `json:"name"`
	Data     json.RawMessage `json:"data"`
	Channel  string          `json:"channel"`
	Channels []string        `json:"channels"`
	SocketID string          `json:"socket_id"`
	Info     string          `json:"info"`
}

var socketIDPattern = regexp.MustCompile(`^\d+\.\d+$`)

// maxChannelsPerEvent is the per-publish channel limit (§8.7); Laravel chunks by 100.
const maxChannelsPerEvent = 100

// apiError is an endpoint refusal: status and message.
type apiError struct {
	status int
	msg    string
}

// validate applies §8.3's table in order and returns the channels and the data string.
func (e *eventBody) validate(cfg *AppConfig) ([]string, string, *apiError) {
	if e.Name == "" || len(e.Name) > maxEventName {
		return nil, "", &apiError{400, "name must be a string of 1 to 200 characters"}
	}
	var data string
	if err := json.Unmarshal(e.Data, &data); err != nil {
		return nil, "", &apiError{400, "data must be a string (JSON-encode objects before sending)"}
	}
	if len(data) > cfg.MaxEventBytes {
		return nil, "", &apiError{413, "data is over " + itoa(cfg.MaxEventBytes) + " bytes"}
	}
	channels := e.Channels
	if e.Channel != "" {
		channels = append([]string{e.Channel}, channels...)
	}
	if len(channels) == 0 || len(channels) > maxChannelsPerEvent {
		return nil, "", &apiError{400, "channels must list 1 to 100 channels"}
	}
	encrypted := false
	for _, c := range channels {
		if !validChannelName(c) {
			return nil, "", &apiError{400, "invalid channel name " + truncate(c, 64)}
		}
		encrypted = encrypted || typeOf(c).kind == kindEncrypted
	}
	if encrypted && len(channels) > 1 {
		return nil, "", &apiError{400, "an encrypted channel cannot be published to together with other channels"}
	}
	if e.SocketID != "" && !socketIDPattern.MatchString(e.SocketID) {
		return nil, "", &apiError{400, "socket_id must look like 1234.5678"}
	}
	if _, err := parseInfo(e.Info, channels); err != nil {
		return nil, "", err
	}
	return channels, data, nil
}

// parseInfo checks the info attributes against every channel (§8.3, §8.5).
func parseInfo(info string, channels []string) (map[string]bool, *apiError) {
	attrs := map[string]bool{}
	if info == "" {
		return attrs, nil
	}
	for _, a := range strings.Split(info, ",") {
		a = strings.TrimSpace(a)
		switch a {
		case "user_count":
			for _, c := range channels {
				if typeOf(c).kind != kindPresence {
					return nil, &apiError{400, "info=user_count is only valid for presence channels (" + truncate(c, 64) + " is not one)"}
				}
			}
		case "subscription_count":
		case "":
			continue
		default:
			return nil, &apiError{400, "unknown info attribute " + truncate(a, 40) + " (user_count, subscription_count)"}
		}
		attrs[a] = true
	}
	return attrs, nil
}

func (s *Server) apiEvents(r *apiRequest) int {
	var e eventBody
	if err := decodeStrict(r.body, &e); err != nil {
		return jsonError(r.ctx, fasthttp.StatusBadRequest, "body is not a JSON event object: "+err.Error())
	}
	cfg := r.app.config()
	channels, data, aerr := e.validate(cfg)
	if aerr != nil {
		return jsonError(r.ctx, aerr.status, aerr.msg)
	}
	s.publish(r.app, e.Name, channels, data, e.SocketID)
	s.cluster.rememberCache(r.ctx, r.app, e.Name, channels, data)
	if e.Info == "" {
		return jsonOK(r.ctx, struct{}{})
	}
	attrs, _ := parseInfo(e.Info, channels)
	out := map[string]map[string]int{}
	for _, c := range channels {
		out[c] = s.channelInfo(r.ctx, r.app, c, attrs)
	}
	return jsonOK(r.ctx, map[string]any{"channels": out})
}

func (s *Server) apiBatchEvents(r *apiRequest) int {
	var b struct {
		Batch []eventBody `json:"batch"`
	}
	if err := decodeStrict(r.body, &b); err != nil {
		return jsonError(r.ctx, fasthttp.StatusBadRequest, "body is not {\"batch\":[…]}: "+err.Error())
	}
	if len(b.Batch) == 0 || len(b.Batch) > 10 {
		return jsonError(r.ctx, fasthttp.StatusBadRequest, "batch must hold 1 to 10 events")
	}
	cfg := r.app.config()
	type checked struct {
		channels []string
		data     string
	}
	all := make([]checked, len(b.Batch))
	withInfo := false
	for i := range b.Batch {
		e := &b.Batch[i]
		if len(e.Channels) > 0 {
			return jsonError(r.ctx, fasthttp.StatusBadRequest, "batch["+itoa(i)+"]: each batch event names one channel")
		}
		channels, data, aerr := e.validate(cfg)
		if aerr != nil {
			return jsonError(r.ctx, aerr.status, "batch["+itoa(i)+"]: "+aerr.msg)
		}
		all[i] = checked{channels, data}
		withInfo = withInfo || e.Info != ""
	}
	for i, c := range all {
		s.publish(r.app, b.Batch[i].Name, c.channels, c.data, b.Batch[i].SocketID)
		s.cluster.rememberCache(r.ctx, r.app, b.Batch[i].Name, c.channels, c.data)
	}
	if !withInfo {
		return jsonOK(r.ctx, struct{}{})
	}
	infos := make([]map[string]int, len(all))
	for i, c := range all {
		attrs, _ := parseInfo(b.Batch[i].Info, c.channels)
		infos[i] = s.channelInfo(r.ctx, r.app, c.channels[0], attrs)
	}
	return jsonOK(r.ctx, map[string]any{"batch": infos})
}

// publish delivers one API event to each channel, here and, through the broker, on every other
// node: one broker message per publish, whatever the number of channels and subscribers.
func (s *Server) publish(app *App, name string, channels []string, data, socketID string) {
	var except *Socket
	if socketID != "" {
		if v, ok := s.byID.Load(socketID); ok && v.(*Socket).app == app {
			except = v.(*Socket)
		}
	}
	app.stats.apiEvents.Add(1)
	if e := s.log.Debug(); e.Enabled() {
		// Never the data: it is the application's, and may be anything.
		e.Str("app", app.config().ID).Int("channels", len(channels)).Str("event", truncate(name, 64)).Msg("API publish")
	}
	s.deliver(app, name, channels, data, "", except, true)
	s.cluster.broadcast(busMsg{T: busEvent, App: app.config().ID, Name: name, Channels: channels, Data: data, Except: socketID})
}

// deliver sends one event to this node's subscribers of each channel: the frame is built once
// per channel and the same bytes go to every subscriber (docs/architecture.md "Encode once, write many").
// remember makes cache channels keep it (API events only, §5.6).
func (s *Server) deliver(app *App, name string, channels []string, data, userID string, except *Socket, remember bool) {
	cfg := app.config()
	for _, c := range channels {
		frame := eventFrame(name, c, data, userID)
		typ := typeOf(c)
		if typ.cache && remember {
			app.hub.setCache(c, frame, data, time.Duration(cfg.CacheTTL)*time.Second)
		}
		n := 0
		if typ.kind == kindServerToUser {
			// sendToUser: every socket signed in as the user, subscribed or not (§7).
			for _, sock := range app.signedInSockets(strings.TrimPrefix(c, "#server-to-user-")) {
				if sock != except {
					sock.sendShared(frame)
					n++
				}
			}
			if s.trace && n > 0 {
				s.traceFanout(app, frame, n)
			}
		} else if ch := app.hub.lookup(c); ch != nil {
			n = ch.broadcast(frame, except)
		}
		app.stats.messagesOut.Add(uint64(n))
		app.stats.bytesOut.Add(uint64(n * len(frame)))
	}
}

// channelInfo answers the requested attributes for one channel, cluster-wide.
func (s *Server) channelInfo(ctx context.Context, app *App, name string, attrs map[string]bool) map[string]int {
	out := map[string]int{}
	if len(attrs) == 0 {
		return out
	}
	subs, users, _ := s.cluster.counts(ctx, app, name)
	if attrs["user_count"] {
		out["user_count"] = users
	}
	if attrs["subscription_count"] {
		out["subscription_count"] = subs
	}
	return out
}
