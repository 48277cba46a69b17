package pusher

import (
	"encoding/json"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

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
	watchEarly map[string]bool // changes that arrived while the initial state was read (under app.usersMu)
	authorized bool            // signed in or joined a private/presence channel
	closed     bool

	clientEvents tokenBucket // client events (§6)
	subscribes   tokenBucket // pusher:subscribe (subscribe_rate)
	msgWindow    int64       // rate_limiting: when the current window began (Unix ns)
	msgCount     int32       // rate_limiting: messages accepted in the window
	protoErrors  int32       // malformed or unknown frames so far (max_protocol_errors)

	ip       string       // the per-address cap's key (ipKey)
	kicked   atomic.Bool  // closed by kick: OnClose does not count it again
	pingedAt atomic.Int64 // janitor: when the server pinged (Unix ns); 0 when not waiting
}

func newSocket(srv *Server, app *App, id, ip string) *Socket {
	return &Socket{id: id, app: app, srv: srv, ip: ip, connectedAt: time.Now()}
}

// send queues a frame for this socket alone, traced at log level trace.
func (s *Socket) send(frame []byte) {
	if s.srv.trace {
		s.traceOut(frame)
	}
	_ = s.conn.Send(frame) // overflow closes the socket with 4100 inside ws
}

// sendShared queues one recipient's copy of a fanned-out frame: the fan-out traces it once for
// all of them (traceFanout), so nothing here is per recipient.
func (s *Socket) sendShared(frame []byte) {
	_ = s.conn.Send(frame)
}

// closeWith sends e as a pusher:error frame, then closes with e.Code (§1.2 "How to refuse").
func (s *Socket) closeWith(e *Error) {
	frame := ws.AppendFrame(nil, ws.OpText, appendErrorFrame(nil, e.Code, e.Message))
	if s.srv.trace {
		s.traceOut(frame)
	}
	s.conn.Close(e.Code, e.Message, frame)
}

// sendError sends a pusher:error frame and keeps the socket (code 0 renders as null).
func (s *Socket) sendError(code int, message string) {
	s.send(ws.AppendFrame(nil, ws.OpText, appendErrorFrame(nil, code, message)))
}

// refuse counts a refused input by reason and logs it at info (docs/architecture.md "Errors and
// logs"), rate-limited per reason: a client can send refused frames far faster than a log should grow.
func (s *Socket) refuse(reason, detail string) {
	s.srv.stats.refused(reason)
	s.srv.rlog.event(zerolog.InfoLevel, reason).Str("reason", reason).Str("app", s.app.config().ID).
		Str("socket_id", s.id).Msg(detail)
}

// protocolError refuses a frame the protocol does not allow (malformed, unknown event) with a
// pusher:error, and closes the socket with 4009 once it has sent max_protocol_errors of them: a
// working client sends none, a broken or hostile one would otherwise repeat them forever.
func (s *Socket) protocolError(reason, detail string, code int, message string) {
	s.refuse(reason, detail)
	s.sendError(code, message)
	s.mu.Lock()
	s.protoErrors++
	n := s.protoErrors
	s.mu.Unlock()
	if int(n) >= s.app.config().MaxProtocolErrors {
		s.kick("protocol_errors", ErrProtocolErrors)
	}
}

// kick closes the socket for a reason of the server's (pong timeout, protocol errors, rate limit,
// terminate_connections): counted by reason and logged rate-limited, so a dropped socket leaves
// a trace. Slow consumers are closed inside ws and counted in OnClose.
func (s *Socket) kick(reason string, e *Error) {
	if s.kicked.Swap(true) {
		return
	}
	s.srv.kicked(s, reason, e.Code)
	s.closeWith(e)
}

// allowMessage applies rate_limiting as Laravel's RateLimiter does for Reverb: a window of
// DecaySeconds opens with the first message, and MaxAttempts messages pass in it.
func (s *Socket) allowMessage(rl *RateLimitConfig, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ns := now.UnixNano(); s.msgWindow == 0 || ns-s.msgWindow >= int64(rl.DecaySeconds)*int64(time.Second) {
		s.msgWindow, s.msgCount = ns, 0
	}
	if int(s.msgCount) >= rl.MaxAttempts {
		return false
	}
	s.msgCount++
	return true
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
	if s.srv.trace {
		s.traceIn(payload)
	}
	s.app.stats.messagesIn.Add(1)
	s.app.stats.bytesIn.Add(uint64(len(payload)))
	s.pingedAt.Store(0) // any frame is activity (§3)
	if s.kicked.Load() {
		return // closing: what the client still sends is not worth a refusal each
	}
	if rl := &s.app.config().RateLimiting; rl.Enabled && !s.allowMessage(rl, time.Now()) {
		s.refuse("message_rate", "message over the app's rate_limiting window")
		s.sendError(ErrMessageRate.Code, ErrMessageRate.Message)
		if rl.TerminateOnLimit {
			s.kick("message_rate", ErrMessageRateClose)
		}
		return
	}
	if d, ok := fastSubscribe(payload); ok {
		s.subscribe(d)
		return
	}
	var m inbound
	if err := json.Unmarshal(payload, &m); err != nil || m.Event == "" {
		s.protocolError("malformed_frame", "frame is not a JSON object with an event", 0,
			"Invalid message format: expected a JSON object with an \"event\" string")
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
		s.protocolError("unknown_event", "unknown event "+truncate(m.Event, 64), 0, "Unknown event: "+truncate(m.Event, 64))
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
	s.srv.release(s.app, s.ip)
	if code == ws.CloseOverCapacity && reason == ws.ReasonSlowConsumer && !s.kicked.Load() {
		// ws closed it: the send queue overflowed (Send's 4100).
		s.srv.kicked(s, "slow_consumer", code)
	}
	if e := s.srv.log.Debug(); e.Enabled() {
		e.Str("app", s.app.config().ID).Str("socket_id", s.id).Str("remote", s.remoteAddr()).Int("code", code).
			Str("reason", truncate(reason, 100)).Msg("socket closed")
	}
}

// remoteAddr is the client's address for debug lines; only they pay for formatting it.
func (s *Socket) remoteAddr() string {
	if c, ok := s.conn.(interface{ RemoteAddr() net.Addr }); ok {
		return c.RemoteAddr().String()
	}
	return ""
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
