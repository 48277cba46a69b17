package pusher

import "bytes"

// fastSubscribe decodes the frame every page load and reconnect sends first, pusher:subscribe with
// plain string fields, without encoding/json (two reflective decodes, the inbound frame and then
// its data, were 5 % of the server's CPU in a connect/subscribe/close loop). It accepts only the
// exact shape JSON.stringify and Go's json.Marshal produce for it: no whitespace, the keys "event"
// and "data" once each in either order, and in data the keys "channel" (non-empty) and optionally
// "auth", each once, whose values are printable ASCII strings without escapes. Anything else
// (channel_data, escapes, other keys, data sent as a string) returns ok false and the caller
// decodes with encoding/json as before, so the fast path never changes what is accepted or what
// it means (FuzzFastSubscribe holds it to encoding/json's reading).
func fastSubscribe(p []byte) (d subscribeData, ok bool) {
	p, ok = cut(p, "{")
	if !ok {
		return d, false
	}
	var sawEvent, sawData bool
	for i := 0; i < 2; i++ {
		if i == 1 {
			if p, ok = cut(p, ","); !ok {
				return d, false
			}
		}
		switch {
		case !sawEvent && bytes.HasPrefix(p, []byte(`"event":"pusher:subscribe"`)):
			p, sawEvent = p[len(`"event":"pusher:subscribe"`):], true
		case !sawData && bytes.HasPrefix(p, []byte(`"data":{`)):
			p, sawData = p[len(`"data":{`):], true
			if p, ok = fastSubscribeData(p, &d); !ok {
				return d, false
			}
		default:
			return d, false
		}
	}
	return d, string(p) == "}"
}

// fastSubscribeData reads the data object's members after its '{' up to and including its '}'.
func fastSubscribeData(p []byte, d *subscribeData) ([]byte, bool) {
	var sawChannel, sawAuth bool
	for first := true; ; first = false {
		if len(p) > 0 && p[0] == '}' && !first {
			return p[1:], sawChannel
		}
		if !first {
			var ok bool
			if p, ok = cut(p, ","); !ok {
				return p, false
			}
		}
		var v []byte
		var ok bool
		switch {
		case !sawChannel && bytes.HasPrefix(p, []byte(`"channel":`)):
			if v, p, ok = plainString(p[len(`"channel":`):]); !ok || len(v) == 0 {
				return p, false
			}
			d.Channel, sawChannel = string(v), true
		case !sawAuth && bytes.HasPrefix(p, []byte(`"auth":`)):
			if v, p, ok = plainString(p[len(`"auth":`):]); !ok {
				return p, false
			}
			if len(v) > 0 {
				d.Auth = string(v)
			}
			sawAuth = true
		default:
			return p, false
		}
	}
}

// plainString reads a JSON string at the start of p whose bytes are printable ASCII other than
// '"' and '\': such a string means exactly its bytes. It returns the contents and the rest.
func plainString(p []byte) (s, rest []byte, ok bool) {
	if len(p) == 0 || p[0] != '"' {
		return nil, p, false
	}
	for i := 1; i < len(p); i++ {
		switch c := p[i]; {
		case c == '"':
			return p[1:i], p[i+1:], true
		case c < 0x20 || c > 0x7e || c == '\\':
			return nil, p, false
		}
	}
	return nil, p, false
}

func cut(p []byte, prefix string) ([]byte, bool) {
	if !bytes.HasPrefix(p, []byte(prefix)) {
		return p, false
	}
	return p[len(prefix):], true
}
