package pusher

import "strconv"

// Error is a Pusher protocol error. Its code decides what pusher-js does (§4):
//
//	4000–4099  do not reconnect unchanged (4001 unknown app, 4004 over quota, 4009 unauthorized)
//	4100–4199  reconnect after backing off ≥ 1 s (4100 over capacity, slow consumer)
//	4200–4299  reconnect at once (4200 restart, 4201 pong not received)
//	4300–4399  errors sent only as pusher:error frames, never as close codes (4301 rate limit)
//
// Code 0 renders as "code":null, which Pusher uses for errors that do not touch the connection.
type Error struct {
	Code    int
	Message string
}

func (e *Error) Error() string { return strconv.Itoa(e.Code) + " " + e.Message }

// The errors the handshake and the event handlers send (§1.2, §4, §6, §7).
var (
	ErrTLSRequired       = &Error{4000, "Application only accepts SSL connections, reconnect using wss://"}
	ErrAppNotFound       = &Error{4001, "Application does not exist"}
	ErrAppDisabled       = &Error{4003, "Application disabled"}
	ErrOverQuota         = &Error{4004, "Application is over connection quota"}
	ErrUnsupportedProto  = &Error{4007, "Unsupported protocol version"}
	ErrNoProtocol        = &Error{4008, "No protocol version supplied"}
	ErrOriginNotAllowed  = &Error{4009, "Origin not allowed"}
	ErrOverCapacity      = &Error{4100, "Over capacity"}
	ErrRestarting        = &Error{4200, "Server is restarting, reconnect"}
	ErrPongTimeout       = &Error{4201, "Pong reply not received"}
	ErrClientEventsOff   = &Error{4301, "Client events are disabled for this app"}
	ErrClientEventRate   = &Error{4301, "Client event rejected due to rate limit"}
	ErrNotAuthorizedTime = &Error{4009, "Connection not authorized within timeout"}
	ErrTerminated        = &Error{4009, "Connection terminated by the server (terminate_connections)"}
	// ErrTooManyFromIP refuses a handshake over max_connections_per_ip: 4100, so pusher-js backs
	// off and retries, and a crowd behind one NAT gets in as others leave.
	ErrTooManyFromIP = &Error{4100, "Over capacity: too many connections from this address"}
	// ErrProtocolErrors closes a socket that sent max_protocol_errors malformed or unknown frames:
	// 4009, so pusher-js does not reconnect to repeat them.
	ErrProtocolErrors = &Error{4009, "Too many invalid messages; closing the connection"}
	// ErrMessageRate answers a message over the app's rate_limiting window (Reverb 1.9's per
	// connection limit; Reverb sends 429, which is no Pusher code: 4301 is the rate-limit code).
	ErrMessageRate = &Error{4301, "Rate limit exceeded: too many messages"}
	// ErrMessageRateClose closes the socket when rate_limiting.terminate_on_limit is set: 4100, so
	// pusher-js reconnects after backing off (a close code ≥4300 would make it give up, §4).
	ErrMessageRateClose = &Error{4100, "Over capacity: message rate limit exceeded; reconnect later"}
)

// appendErrorFrame renders e as a pusher:error frame payload (data is a JSON string, §2).
func appendErrorFrame(dst []byte, code int, message string) []byte {
	var inner []byte
	inner = append(inner, `{"code":`...)
	if code == 0 {
		inner = append(inner, "null"...)
	} else {
		inner = strconv.AppendInt(inner, int64(code), 10)
	}
	inner = append(inner, `,"message":`...)
	inner = appendJSONString(inner, message)
	inner = append(inner, '}')
	dst = append(dst, `{"event":"pusher:error","data":`...)
	dst = appendJSONString(dst, string(inner))
	return append(dst, '}')
}
