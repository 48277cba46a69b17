package pusher

import "strings"

// channelKind is what a channel's name prefix makes it (§5.1).
type channelKind uint8

const (
	kindPublic channelKind = iota
	kindPrivate
	kindPresence
	kindEncrypted
	kindServerToUser
)

// channelType is the decoded prefix of a channel name.
type channelType struct {
	kind  channelKind
	cache bool
}

// needsAuth reports whether subscribing needs a signature.
func (t channelType) needsAuth() bool {
	return t.kind == kindPrivate || t.kind == kindPresence || t.kind == kindEncrypted
}

// acceptsClientEvents: private and presence only, never public or encrypted (§6).
func (t channelType) acceptsClientEvents() bool {
	return t.kind == kindPrivate || t.kind == kindPresence
}

// prefixes is §5.1's table, longest match first, each with its dash: Reverb's prefix test without
// the dash (a channel "privateer" is private there) is the mistake not to copy.
var prefixes = []struct {
	prefix string
	typ    channelType
}{
	{"private-encrypted-cache-", channelType{kindEncrypted, true}},
	{"private-encrypted-", channelType{kindEncrypted, false}},
	{"private-cache-", channelType{kindPrivate, true}},
	{"private-", channelType{kindPrivate, false}},
	{"presence-cache-", channelType{kindPresence, true}},
	{"presence-", channelType{kindPresence, false}},
	{"cache-", channelType{kindPublic, true}},
	{"#server-to-user-", channelType{kindServerToUser, false}},
}

func typeOf(name string) channelType {
	for _, p := range prefixes {
		if strings.HasPrefix(name, p.prefix) {
			return p.typ
		}
	}
	return channelType{kind: kindPublic}
}

// maxChannelName is 200: the SDKs' and Soketi's limit, which also accepts the 164 the docs name (§5.1).
const maxChannelName = 200

// validChannelName applies §5.1: 1–200 characters from A–Z a–z 0–9 _ - = @ , . ; and '#' only
// as the reserved #server-to-user- prefix.
func validChannelName(name string) bool {
	if name == "" || len(name) > maxChannelName {
		return false
	}
	rest := name
	if strings.HasPrefix(name, "#server-to-user-") {
		rest = name[len("#server-to-user-"):]
		if rest == "" {
			return false
		}
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '_', c == '-', c == '=', c == '@', c == ',', c == '.', c == ';':
		default:
			return false
		}
	}
	return true
}
