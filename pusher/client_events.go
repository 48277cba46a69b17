package pusher

import (
	"strconv"
	"time"

	"github.com/frontdoorhq/frontdoor/pusher/internal/ws"
)

// maxEventName is the SDKs' limit on event names (§8.7).
const maxEventName = 200

// handleClientEvent relays a client- event to the channel's other subscribers after §6's checks,
// in the spec's order. A refusal sends pusher:error and keeps the socket.
func (s *Socket) handleClientEvent(m *inbound) {
	cfg := s.app.config()
	if cfg.AcceptClientEventsFrom == "none" {
		s.refuse("client_events_disabled", "client event on an app that refuses them")
		s.sendError(ErrClientEventsOff.Code, ErrClientEventsOff.Message)
		return
	}
	typ := typeOf(m.Channel)
	if m.Channel == "" || !typ.acceptsClientEvents() {
		s.protocolError("client_event_channel", "client event on a channel that does not take them: "+truncate(m.Channel, 64), 0,
			"Client events are only accepted on private and presence channels (not public or encrypted)")
		return
	}
	s.mu.Lock()
	userID, subscribed := s.subs.get(m.Channel)
	s.mu.Unlock()
	// In every mode, all included: a socket that never joined a private or presence channel
	// passed no authorization for it, so it may not speak there (Pusher's rule).
	if !subscribed {
		s.refuse("client_event_not_subscribed", "client event on a channel the socket has not joined")
		s.sendError(4009, "Client event rejected: subscribe to "+truncate(m.Channel, 64)+" first")
		return
	}
	data, _ := rawString(m.Data)
	if len(m.Event) > maxEventName || len(data) > cfg.MaxEventBytes {
		s.refuse("client_event_too_large", "client event name or data over the limit")
		s.sendError(4301, "Client event rejected: name over "+strconv.Itoa(maxEventName)+" characters or data over "+strconv.Itoa(cfg.MaxEventBytes)+" bytes")
		return
	}
	if !s.allowClientEvent(cfg.ClientEventRate, time.Now()) {
		s.refuse("client_event_rate", "client event over the rate limit")
		s.sendError(ErrClientEventRate.Code, ErrClientEventRate.Message)
		return
	}
	// Rebuilt from event, channel and data only; user_id from the presence channel_data the
	// server verified, never from the client (§6).
	if typ.kind != kindPresence {
		userID = ""
	}
	s.app.stats.clientEvents.Add(1)
	if len(cfg.Webhooks) > 0 {
		s.srv.emitWebhook(s.app, webhookEvent{Name: "client_event", Channel: m.Channel, Event: m.Event, Data: &data, SocketID: s.id, UserID: userID})
	}
	s.srv.cluster.broadcast(busMsg{T: busEvent, App: cfg.ID, Name: m.Event, Channels: []string{m.Channel}, Data: data, Except: s.id, User: userID, Client: true})
	ch := s.app.hub.lookup(m.Channel)
	if ch == nil {
		return
	}
	frame := eventFrame(m.Event, m.Channel, data, userID)
	n := ch.broadcast(frame, s)
	s.app.stats.messagesOut.Add(uint64(n))
	s.app.stats.bytesOut.Add(uint64(n * len(frame)))
}

// eventFrameRaw frames an already-built JSON event.
func eventFrameRaw(body []byte) []byte { return ws.AppendFrame(nil, ws.OpText, body) }
