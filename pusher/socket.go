package pusher

import (
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	"github.com/frontdoorhq/frontdoor/pusher/internal/ws"
)

// transport is what a Socket needs from the connection underneath; *ws.Conn is the real one.
type transport interface {
	Send(frame []byte) error
	Close(code int, reason string, final ...[]byte)
	Ping()
	LastActivity() int64
}

// Socket is one client connection (§1).
type Socket struct {
	id          string
	app         *App
	srv         *Server
	conn        transport
	connectedAt time.Time

	mu         sync.Mutex
	subs       subSet          // channel → presence user id ("" for other kinds)
	user       string          // signed-in user id (§7), "" when not signed in
	watching   []string        // user ids of the signed-in watchlist (§7)
	watchTold  map[string]bool // what the watchlist was last told per user (under app.usersMu)
	authorized bool            // signed in or joined a private/presence channel
	closed     bool
	tokens     float64 // client-event token bucket (§6)
	refill     time.Time

	pingedAt atomic.Int64 // janitor: when the server pinged (Unix ns); 0 when not waiting
}

func newSocket(srv *Server, app *App, id string) *Socket {
	return &Socket{id: id, app: app, srv: srv, connectedAt: time.Now()}
}

func (s *Socket) send(frame []byte) {
	_ = s.conn.Send(frame) // overflow closes the socket with 4100 inside ws
}

// closeWith sends e as a pusher:error frame, then closes with e.Code (§1.2 "How to refuse").
func (s *Socket) closeWith(e *Error) {
	s.conn.Close(e.Code, e.Message, ws.AppendFrame(nil, ws.OpText, appendErrorFrame(nil, e.Code, e.Message)))
}

// sendError sends a pusher:error frame and keeps the socket (code 0 renders as null).
func (s *Socket) sendError(code int, message string) {
	s.send(ws.AppendFrame(nil, ws.OpText, appendErrorFrame(nil, code, message)))
}

// refuse logs a refused input at info with its reason (docs/architecture.md "Errors and logs") and counts it.
func (s *Socket) refuse(reason, detail string) {
	s.srv.stats.refused(reason)
	s.srv.log.Info().Str("app", s.app.config().ID).Str("socket_id", s.id).Str("reason", reason).Msg(detail)
}

// inbound is one client frame (§2). Data stays raw: pusher-js sends objects, other SDKs strings.
type inbound struct {
	Event   string          `json:"event"`
	Channel string          `json:"channel"`
	Data    json.RawMessage `json:"data"`
}

// Adopted implements ws.Adopter: the socket becomes reachable (API, shutdown, socket_id
// exclusion) before ws reads anything, so OnMessage and OnClose never see it half set up.
func (s *Socket) Adopted(c *ws.Conn) {
	s.conn = c
	s.app.sockets.Store(s, struct{}{})
	s.srv.byID.Store(s.id, s)
}

// OnMessage implements ws.Handler: one text message from the client.
func (s *Socket) OnMessage(payload []byte) {
	s.app.stats.messagesIn.Add(1)
	s.app.stats.bytesIn.Add(uint64(len(payload)))
	s.pingedAt.Store(0) // any frame is activity (§3)
	var m inbound
	if err := json.Unmarshal(payload, &m); err != nil || m.Event == "" {
		s.refuse("malformed_frame", "frame is not a JSON object with an event")
		s.sendError(0, "Invalid message format: expected a JSON object with an \"event\" string")
		return
	}
	switch m.Event {
	case "pusher:ping":
		s.send(pongFrame)
	case "pusher:pong":
	case "pusher:subscribe":
		s.handleSubscribe(m.Data)
	case "pusher:unsubscribe":
		s.handleUnsubscribe(m.Data)
	case "pusher:signin":
		s.handleSignin(m.Data)
	default:
		if len(m.Event) > 7 && m.Event[:7] == "client-" {
			s.handleClientEvent(&m)
			return
		}
		s.refuse("unknown_event", "unknown event "+truncate(m.Event, 64))
		s.sendError(0, "Unknown event: "+truncate(m.Event, 64))
	}
}

// OnClose implements ws.Handler: the connection is gone. Leave every channel, announcing
// member_removed where this was a user's last socket (§5.4).
func (s *Socket) OnClose(code int, reason string) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	subs := s.subs
	s.subs = subSet{}
	user, watching := s.user, s.watching
	s.mu.Unlock()

	subs.each(func(name, uid string) bool {
		s.leave(name, uid)
		return true
	})
	if len(watching) > 0 {
		s.stopWatching(watching)
	}
	if user != "" && s.app.removeSignedIn(user, s) {
		s.srv.userOffline(s.app, user)
	}
	s.app.sockets.Delete(s)
	s.srv.byID.Delete(s.id)
	s.app.conns.Add(-1)
	s.srv.conns.Add(-1)
	s.srv.log.Debug().Str("socket_id", s.id).Int("code", code).Str("reason", reason).Msg("socket closed")
}

// truncate keeps client-controlled strings short in logs and error messages.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

var pongFrame = ws.AppendFrame(nil, ws.OpText, []byte(`{"event":"pusher:pong","data":"{}"}`))

// appendEvent builds a server frame's JSON: {"event":…,"channel":…,"data":…,"user_id":…}.
// data is already the string the client will see (§2: always a string).
func appendEvent(dst []byte, event, channel, data, userID string) []byte {
	dst = append(dst, `{"event":`...)
	dst = appendJSONString(dst, event)
	if channel != "" {
		dst = append(dst, `,"channel":`...)
		dst = appendJSONString(dst, channel)
	}
	dst = append(dst, `,"data":`...)
	dst = appendJSONString(dst, data)
	if userID != "" {
		dst = append(dst, `,"user_id":`...)
		dst = appendJSONString(dst, userID)
	}
	return append(dst, '}')
}

// eventFrame is appendEvent framed as one WebSocket text frame, ready to share.
func eventFrame(event, channel, data, userID string) []byte {
	// The JSON is built after a 10-byte gap where the frame header then goes, right-aligned:
	// one allocation per publish, whatever the number of recipients.
	const gap = 10
	buf := make([]byte, gap, gap+64+len(event)+len(channel)+len(data)+len(data)/8)
	buf = appendEvent(buf, event, channel, data, userID)
	var hdr [gap]byte
	h := ws.AppendHeader(hdr[:0], ws.OpText, len(buf)-gap)
	start := gap - len(h)
	copy(buf[start:], h)
	return buf[start:]
}

func appendInt(dst []byte, n int) []byte {
	if n == 0 {
		return append(dst, '0')
	}
	var b [20]byte
	i := len(b)
	neg := n < 0
	if neg {
		n = -n
	}
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return append(dst, b[i:]...)
}
