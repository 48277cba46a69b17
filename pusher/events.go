package pusher

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// decodeData reads a pusher:* event's data, which pusher-js sends as an object and some SDKs as a
// JSON string holding the object (§2); both are accepted.
func decodeData(raw json.RawMessage, v any) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return err
		}
		raw = []byte(s)
	}
	return json.Unmarshal(raw, v)
}

// rawString returns a field that should be a JSON string as that string; if a client sent an
// object instead, its JSON text is used. Signatures cover these bytes as received (§5.3).
func rawString(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", false
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", false
		}
		return s, true
	}
	return string(raw), true
}

type subscribeData struct {
	Channel     string          `json:"channel"`
	Auth        string          `json:"auth"`
	ChannelData json.RawMessage `json:"channel_data"`
}

// subscriptionError answers a refused subscription on the channel, keeping the socket (§5.2):
// pusher-js routes it to the channel, where Echo's .error() callback sees it.
func (s *Socket) subscriptionError(channel, typ, msg string, status int) {
	s.subscriptionRefused("subscription_"+strings.ToLower(typ), channel, typ, msg, status)
}

// subscriptionRefused is subscriptionError counted and logged under its own reason.
func (s *Socket) subscriptionRefused(reason, channel, typ, msg string, status int) {
	s.refuse(reason, truncate(channel, 64)+": "+msg)
	inner := `{"type":` + string(appendJSONString(nil, typ)) + `,"error":` + string(appendJSONString(nil, msg)) + `,"status":` + strconv.Itoa(status) + `}`
	s.send(eventFrame("pusher:subscription_error", channel, inner, ""))
}

// handleSubscribe implements §5.2–§5.6 in three steps: authorize by the channel's kind, join
// the channel, announce what the join changed.
func (s *Socket) handleSubscribe(raw json.RawMessage) {
	var d subscribeData
	if err := decodeData(raw, &d); err != nil || d.Channel == "" {
		s.protocolError("malformed_subscribe", "pusher:subscribe without data.channel", 0, "Invalid pusher:subscribe: data.channel is required")
		return
	}
	s.subscribe(d)
}

// subscribe handles a decoded pusher:subscribe (handleSubscribe, or fastSubscribe's shape).
func (s *Socket) subscribe(d subscribeData) {
	cfg := s.app.config()
	if !s.subscribeAllowed(d.Channel, cfg) {
		return
	}
	typ := typeOf(d.Channel)
	m, ok := authorizers[typ.kind](s, &d, cfg)
	if !ok {
		return
	}
	if r, ch, ok := s.join(d.Channel, typ, m, cfg); ok {
		s.announceJoin(ch, r, m, cfg)
	}
}

// subscribeAllowed applies the per-socket limits and the name rules (§5.1). One socket could
// otherwise create channels without bound (each one memory, and a channel_occupied webhook):
// its subscribes are rate-limited, its channels capped.
func (s *Socket) subscribeAllowed(name string, cfg *AppConfig) bool {
	s.mu.Lock()
	_, already := s.subs.get(name)
	have := s.subs.len()
	allowed := s.subscribes.take(float64(cfg.SubscribeRate), float64(max(cfg.SubscribeRate, cfg.MaxSubscriptionsPerConnection)), time.Now())
	s.mu.Unlock()
	switch {
	case !allowed:
		s.subscriptionRefused("subscribe_rate", name, "LimitReached", "Subscription rejected due to rate limit ("+strconv.Itoa(cfg.SubscribeRate)+" per second)", 4301)
	case !already && have >= cfg.MaxSubscriptionsPerConnection:
		s.subscriptionRefused("max_subscriptions", name, "LimitReached", "This connection is on "+strconv.Itoa(have)+" channels, its limit; unsubscribe from one first", 4004)
	case !validChannelName(name):
		s.subscriptionError(name, "InvalidChannel", "Invalid channel name: 1 to 200 characters of A-Z a-z 0-9 _ - = @ , . ;", 400)
	default:
		return true
	}
	return false
}

// presenceMember is who a presence subscription joins as (§5.4); zero for the other kinds.
type presenceMember struct {
	id   string
	info []byte // user_info JSON
}

// An authorizer checks a subscription to one kind of channel, in the manner of Reverb's class
// per channel type: false means it refused, and the refusal has been sent.
type authorizer func(s *Socket, d *subscribeData, cfg *AppConfig) (presenceMember, bool)

var authorizers = [...]authorizer{
	kindPublic:       authorizePublic,
	kindPrivate:      authorizePrivate,
	kindEncrypted:    authorizePrivate, // signed as private; the payload's key is the app's (§5.3)
	kindPresence:     authorizePresence,
	kindServerToUser: authorizeServerToUser,
}

// authorizePublic: anyone may subscribe (cache- channels included, §5.6).
func authorizePublic(*Socket, *subscribeData, *AppConfig) (presenceMember, bool) {
	return presenceMember{}, true
}

// authorizePrivate checks auth, the app's signature of "socket_id:channel" (§5.3).
func authorizePrivate(s *Socket, d *subscribeData, cfg *AppConfig) (presenceMember, bool) {
	if !verifyAuth(d.Auth, cfg.Key, cfg.Secret, s.id+":"+d.Channel) {
		s.subscriptionError(d.Channel, "AuthError", "Invalid signature: expected HMAC SHA256 hex digest of "+s.id+":"+d.Channel, 401)
		return presenceMember{}, false
	}
	return presenceMember{}, true
}

// authorizePresence checks the signature of "socket_id:channel:channel_data" and reads the
// member from channel_data (§5.4).
func authorizePresence(s *Socket, d *subscribeData, cfg *AppConfig) (presenceMember, bool) {
	name := d.Channel
	channelData, ok := rawString(d.ChannelData)
	if !ok {
		s.subscriptionError(name, "AuthError", "Presence channels need channel_data with a user_id", 401)
		return presenceMember{}, false
	}
	if !verifyAuth(d.Auth, cfg.Key, cfg.Secret, s.id+":"+name+":"+channelData) {
		s.subscriptionError(name, "AuthError", "Invalid signature: expected HMAC SHA256 hex digest of "+s.id+":"+name+":<channel_data>", 401)
		return presenceMember{}, false
	}
	id, info, err := parseChannelData(channelData, cfg.MaxPresenceUserBytes)
	if err != "" {
		s.subscriptionError(name, "AuthError", err, 400)
		return presenceMember{}, false
	}
	return presenceMember{id: id, info: info}, true
}

// authorizeServerToUser: only a socket signed in as the user joins its #server-to-user- channel (§7).
func authorizeServerToUser(s *Socket, d *subscribeData, _ *AppConfig) (presenceMember, bool) {
	s.mu.Lock()
	me := s.user
	s.mu.Unlock()
	if me == "" || d.Channel != "#server-to-user-"+me {
		s.subscriptionError(d.Channel, "AuthError", "Only a socket signed in as this user may subscribe to its #server-to-user- channel", 401)
		return presenceMember{}, false
	}
	return presenceMember{}, true
}

// join adds the socket to the channel in the hub and records it on the socket; false means the
// socket closed meanwhile or the join was refused (and answered).
func (s *Socket) join(name string, typ channelType, m presenceMember, cfg *AppConfig) (subscribeResult, *Channel, bool) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return subscribeResult{}, nil, false
	}
	s.mu.Unlock()

	r, ch := s.app.hub.subscribe(name, typ, s, m.id, m.info, cfg.MaxPresenceMembers, cfg.MaxChannels)
	if r.full {
		s.subscriptionRefused("max_channels", name, "LimitReached", "The app is at its limit of "+strconv.Itoa(cfg.MaxChannels)+" channels", 4004)
		return r, nil, false
	}
	if r.limit {
		s.subscriptionError(name, "LimitReached", "Presence channel is full ("+strconv.Itoa(cfg.MaxPresenceMembers)+" members)", 4004)
		return r, nil, false
	}
	if !r.already {
		s.mu.Lock()
		if s.closed { // closed while subscribing: undo so the channel does not keep a dead socket
			s.mu.Unlock()
			s.app.hub.unsubscribe(name, s, m.id)
			return r, nil, false
		}
		s.subs.set(name, m.id)
		if typ.needsAuth() {
			s.authorized = true
		}
		s.mu.Unlock()
		s.app.stats.subscriptions.Add(1)
	}
	return r, ch, true
}

// announceJoin queues the app's webhooks for what the join changed, tells the socket it is
// subscribed (with the members, §5.4, or the cached event, §5.6), then the channel and the
// other nodes.
func (s *Socket) announceJoin(ch *Channel, r subscribeResult, m presenceMember, cfg *AppConfig) {
	name, typ := ch.name, ch.typ
	data := "{}"
	announce, tellOthers := false, false
	if typ.kind == kindPresence && r.newMember {
		// member_added goes out once per user cluster-wide (§5.4): for the user's first socket
		// on this node, the broker says whether another node already had the user.
		announce, tellOthers = s.srv.cluster.presenceJoin(context.Background(), s.app, ch, m.id, m.info)
	}
	if typ.kind == kindPresence {
		members, _ := s.srv.cluster.members(context.Background(), s.app, ch, name)
		data = string(presenceData(members))
	}
	hooks := len(cfg.Webhooks) > 0 && !r.already
	if hooks {
		s.srv.webhooks.subscribed(s.app, name, typ, r, m.id)
	}
	s.send(eventFrame("pusher_internal:subscription_succeeded", name, data, ""))
	cacheMissed := typ.cache && !s.sendCached(name, r.cached)
	ch.activate(s)
	if announce {
		ch.broadcast(memberAddedFrame(name, m.id, m.info), s)
	}
	if tellOthers {
		s.srv.cluster.broadcast(busMsg{T: busAdded, App: cfg.ID, Channels: []string{name}, User: m.id, Info: m.info})
	}
	if hooks && cacheMissed {
		s.srv.webhooks.cacheMiss(s.app, name)
	}
	if cfg.SubscriptionCount && typ.kind != kindPresence && !r.already {
		s.srv.cluster.subscriptionCountChanged(s.app, ch, r.subsAfter, false)
	}
}

// sendCached sends a cache channel's last event after subscription_succeeded, from this node
// (cached) or, when it has none, from the broker; otherwise pusher:cache_miss (§5.6). It reports
// whether there was an event.
func (s *Socket) sendCached(name string, cached []byte) bool {
	if cached == nil {
		cached = s.srv.cluster.remoteCache(context.Background(), s.app, name)
	}
	if cached == nil {
		s.send(cacheMissFrame(name))
		return false
	}
	s.send(cached)
	return true
}

func cacheMissFrame(channel string) []byte {
	b := append([]byte(`{"event":"pusher:cache_miss","channel":`), appendJSONString(nil, channel)...)
	b = append(b, '}')
	return eventFrameRaw(b)
}

// parseChannelData reads presence channel_data (§5.4): user_id string or number (identity is its
// string form, ≤128 characters), user_info any JSON ("null" when absent).
func parseChannelData(channelData string, maxInfo int) (string, []byte, string) {
	var cd struct {
		UserID   json.RawMessage `json:"user_id"`
		UserInfo json.RawMessage `json:"user_info"`
	}
	if err := json.Unmarshal([]byte(channelData), &cd); err != nil {
		return "", nil, "channel_data is not a JSON object"
	}
	id := ""
	raw := bytes.TrimSpace(cd.UserID)
	switch {
	case len(raw) == 0 || string(raw) == "null":
	case raw[0] == '"':
		_ = json.Unmarshal(raw, &id)
	case raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9'):
		id = string(raw)
	}
	if id == "" {
		return "", nil, "channel_data.user_id is required (a string or a number)"
	}
	if len(id) > 128 {
		return "", nil, "channel_data.user_id is longer than 128 characters"
	}
	info := bytes.TrimSpace(cd.UserInfo)
	if len(info) == 0 {
		info = []byte("null")
	}
	if maxInfo > 0 && len(info) > maxInfo {
		return "", nil, "channel_data.user_info is larger than " + strconv.Itoa(maxInfo) + " bytes"
	}
	// Compact once so the member_added and subscription_succeeded JSON stays well-formed.
	var buf bytes.Buffer
	if json.Compact(&buf, info) != nil {
		return "", nil, "channel_data.user_info is not valid JSON"
	}
	return id, buf.Bytes(), ""
}

// handleUnsubscribe implements §5.5: no reply; unknown channels are ignored.
func (s *Socket) handleUnsubscribe(raw json.RawMessage) {
	var d subscribeData
	if err := decodeData(raw, &d); err != nil || d.Channel == "" {
		s.protocolError("malformed_unsubscribe", "pusher:unsubscribe without data.channel", 0, "Invalid pusher:unsubscribe: data.channel is required")
		return
	}
	s.mu.Lock()
	uid, ok := s.subs.remove(d.Channel)
	s.mu.Unlock()
	if ok {
		s.leave(d.Channel, uid)
	}
}

// leave removes the socket from a channel and announces what changed.
func (s *Socket) leave(name, userID string) {
	r, ch := s.app.hub.unsubscribe(name, s, userID)
	if !r.was {
		return
	}
	s.app.stats.subscriptions.Add(-1)
	if r.lastMember {
		announce, tellOthers := s.srv.cluster.presenceLeave(context.Background(), s.app, name, userID)
		if announce && !r.vacated {
			ch.broadcast(memberRemovedFrame(name, userID), nil)
		}
		if tellOthers {
			s.srv.cluster.broadcast(busMsg{T: busRemoved, App: s.app.config().ID, Channels: []string{name}, User: userID})
		}
	}
	if s.app.config().SubscriptionCount && ch.typ.kind != kindPresence {
		s.srv.cluster.subscriptionCountChanged(s.app, ch, r.subsAfter, r.vacated)
	}
	if len(s.app.config().Webhooks) > 0 {
		s.srv.webhooks.unsubscribed(s.app, name, userID, r)
	}
}

// handleSignin implements §7: verify user_data's signature, answer signin_success with the exact
// string that was signed, and index the socket under the user for #server-to-user- and terminate.
func (s *Socket) handleSignin(raw json.RawMessage) {
	var d struct {
		Auth     string          `json:"auth"`
		UserData json.RawMessage `json:"user_data"`
	}
	if err := decodeData(raw, &d); err != nil {
		s.protocolError("malformed_signin", "pusher:signin data is not an object", 4009, "Invalid pusher:signin: data must hold auth and user_data")
		return
	}
	userData, ok := rawString(d.UserData)
	cfg := s.app.config()
	if !ok || !verifyAuth(d.Auth, cfg.Key, cfg.Secret, s.id+"::user::"+userData) {
		s.refuse("signin_auth", "pusher:signin with an invalid signature")
		s.sendError(4009, "Invalid signature for pusher:signin")
		return
	}
	var u struct {
		ID json.RawMessage `json:"id"`
	}
	_ = json.Unmarshal([]byte(userData), &u)
	var id string
	if json.Unmarshal(u.ID, &id) != nil || id == "" {
		s.refuse("signin_user_data", "pusher:signin user_data without a string id")
		s.sendError(4009, "Invalid pusher:signin: user_data must be a JSON object with a non-empty string id")
		return
	}
	s.mu.Lock()
	if s.user != "" && s.user != id {
		s.mu.Unlock()
		s.refuse("signin_other_user", "pusher:signin as a second user")
		s.sendError(4009, "This connection is already signed in as another user")
		return
	}
	first := s.user == ""
	s.user, s.authorized = id, true
	s.mu.Unlock()
	if first && s.app.addSignedIn(id, s) {
		s.srv.userOnline(s.app, id)
	}
	s.send(eventFrame("pusher:signin_success", "", `{"user_data":`+string(appendJSONString(nil, userData))+`}`, ""))
	if first {
		if ids := parseWatchlist(userData); len(ids) > 0 {
			s.startWatching(ids)
		}
	}
}

// allowClientEvent takes one token from the socket's bucket: rate per second, burst rate (§6).
func (s *Socket) allowClientEvent(rate int, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.clientEvents.take(float64(rate), float64(rate), now)
}

// tokenBucket is a per-socket rate limit; the socket's mutex guards it. 16 bytes: every socket
// has two.
type tokenBucket struct {
	tokens float64
	refill int64 // Unix ns of the last take; 0 for a new bucket
}

// take reports whether a token was available at rate per second with the given burst, and
// takes it. A new bucket starts full.
func (b *tokenBucket) take(rate, burst float64, now time.Time) bool {
	ns := now.UnixNano()
	if b.refill == 0 {
		b.tokens, b.refill = burst, ns
	}
	b.tokens = min(burst, b.tokens+float64(ns-b.refill)/1e9*rate)
	b.refill = ns
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
