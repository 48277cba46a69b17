package pusher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// busMsg is what one node tells the others (Broker.Broadcast). One message per publish, never
// per subscriber: each receiving node frames the event once per channel and shares the bytes
// among its own subscribers (docs/architecture.md "Encode once, write many").
type busMsg struct {
	T        busKind         `json:"t"`
	App      string          `json:"app"`
	Name     string          `json:"name,omitempty"`
	Channels []string        `json:"channels,omitempty"`
	Data     string          `json:"data,omitempty"`
	Except   string          `json:"except,omitempty"` // socket_id that must not receive it (§8.3)
	User     string          `json:"user,omitempty"`   // presence user_id, or the user to terminate
	Info     json.RawMessage `json:"info,omitempty"`   // presence user_info
	Client   bool            `json:"client,omitempty"` // a client event: not remembered by cache channels
}

// busKind says what a busMsg carries. The values are the wire's: nodes of different versions
// share one bus during a rolling upgrade, so a kind is never renamed, only added.
type busKind string

const (
	busEvent     busKind = "event"     // an API publish or a client event
	busAdded     busKind = "added"     // member_added, the user's first socket cluster-wide
	busRemoved   busKind = "removed"   // member_removed, the user's last socket cluster-wide
	busTerminate busKind = "terminate" // terminate_connections for a user
	busOnline    busKind = "online"    // a watched user's first signed-in socket cluster-wide
	busOffline   busKind = "offline"   // a watched user's last signed-in socket closed
	busSubcount  busKind = "subcount"  // a channel's cluster-wide subscription_count
)

// question is one Broker.Ask: what the other nodes hold locally, summed by the asker.
type question struct {
	Q       questionKind `json:"q"`
	App     string       `json:"app"`
	Prefix  string       `json:"prefix,omitempty"`
	Channel string       `json:"channel,omitempty"`
}

// questionKind says what a question asks; like busKind, its values are the wire's.
type questionKind string

const (
	askChannels    questionKind = "channels"    // occupied channels by prefix, with subscriptions
	askChannel     questionKind = "channel"     // one channel's subscriptions
	askConnections questionKind = "connections" // the app's open sockets
)

type answer struct {
	Channels    map[string]int `json:"channels,omitempty"` // occupied channel → subscriptions
	Subs        int            `json:"subs,omitempty"`
	Connections int64          `json:"connections,omitempty"`
}

// NodeID implements Node.
func (s *Server) NodeID() string { return strconv.FormatUint(s.nodeID, 10) }

// broadcast hands m to the broker for the other nodes. m is a value, encoded in send: alone,
// a message is not even built on the heap.
func (c *cluster) broadcast(m busMsg) {
	if !c.alone {
		c.send(m)
	}
}

func (c *cluster) send(m busMsg) {
	b, _ := json.Marshal(&m)
	c.broker.Broadcast(b)
}

// Deliver implements Node: another node's publish, presence change or terminate.
func (s *Server) Deliver(raw []byte) {
	var m busMsg
	if err := json.Unmarshal(raw, &m); err != nil {
		s.log.Warn().Err(err).Msg("cluster: undecodable message from another node")
		return
	}
	app := s.appByID(m.App)
	if app == nil {
		return // an app this node does not serve (yet): nothing to deliver to
	}
	switch m.T {
	case busEvent:
		var except *Socket
		if m.Except != "" {
			if v, ok := s.byID.Load(m.Except); ok && v.(*Socket).app == app {
				except = v.(*Socket)
			}
		}
		s.deliver(app, m.Name, m.Channels, m.Data, m.User, except, !m.Client)
	case busAdded:
		if ch := app.hub.lookup(first(m.Channels)); ch != nil && !ch.hasMember(m.User) {
			ch.broadcast(memberAddedFrame(ch.name, m.User, m.Info), nil)
		}
	case busRemoved:
		if ch := app.hub.lookup(first(m.Channels)); ch != nil && !ch.hasMember(m.User) {
			ch.broadcast(memberRemovedFrame(ch.name, m.User), nil)
		}
	case busTerminate:
		app.terminate(m.User)
	case busOnline, busOffline:
		app.notifyWatchers(m.User, m.T == busOnline)
	case busSubcount:
		s.deliverSubscriptionCount(app, first(m.Channels), m.Data)
	}
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// Answer implements Node: this node's share of a cluster-wide API answer (§8.5).
func (s *Server) Answer(raw []byte) []byte {
	var q question
	var a answer
	if json.Unmarshal(raw, &q) == nil {
		if app := s.appByID(q.App); app != nil {
			switch q.Q {
			case askChannels:
				a.Channels = map[string]int{}
				for _, ch := range app.hub.channelsSnapshot() {
					if strings.HasPrefix(ch.name, q.Prefix) {
						subs, _ := ch.counts()
						a.Channels[ch.name] = subs
					}
				}
			case askChannel:
				if ch := app.hub.lookup(q.Channel); ch != nil {
					a.Subs, _ = ch.counts()
				}
			case askConnections:
				a.Connections = app.conns.Load()
			}
		}
	}
	b, _ := json.Marshal(a)
	return b
}

// ask sums the other nodes' answers; on a broker error it logs and returns what arrived, so
// an API answer degrades to this node's view rather than failing, and partial says so.
func (c *cluster) ask(ctx context.Context, q question) (out []answer, partial bool) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	b, _ := json.Marshal(q)
	raws, err := c.broker.Ask(ctx, b)
	if err != nil {
		c.failed(fmt.Errorf("%s: answering from the nodes that replied: %w", q.Q, err))
	}
	out = make([]answer, 0, len(raws))
	for _, r := range raws {
		var a answer
		if json.Unmarshal(r, &a) == nil {
			out = append(out, a)
		}
	}
	return out, err != nil
}

// Connections implements Node.
func (s *Server) Connections() map[string]int64 {
	out := map[string]int64{}
	for _, a := range s.appList() {
		out[a.config().ID] = a.conns.Load()
	}
	return out
}

// Reconnected implements Node: re-register every local presence member (and the webhook
// registrations). A member is announced to the other nodes when it is new cluster-wide and they
// have not heard of it: it joined while the broker was unreachable, or the other nodes declared
// this node dead and announced that member gone (reaped). After Redis merely lost its data (a
// restart), every node re-registers and nobody is told anything twice. A member lost and no
// longer here left during the outage and is announced gone, first: that needs no registration,
// so a rebuild cut short still tells the others.
func (s *Server) Reconnected(lost, reaped []Membership) error {
	s.unsettled.Lock()
	defer s.unsettled.Unlock()
	wasLost := s.unsettled.lost
	s.unsettled.lost = nil
	if wasLost == nil {
		wasLost = make(map[string]Membership, len(lost))
	}
	for _, m := range lost {
		wasLost[m.key()] = m
	}
	wasReaped := make(map[string]bool, len(reaped))
	for _, m := range reaped {
		wasReaped[m.key()] = true
	}
	// A registration to make again; ch, app and unannounced (the other nodes missed the join)
	// are set for presence members only.
	type reg struct {
		m           Membership
		ch          *Channel
		app         *App
		unannounced bool
	}
	var regs []reg
	for _, app := range s.appList() {
		for _, ch := range app.hub.channelsSnapshot() {
			if ch.typ.kind == kindPresence {
				for _, m := range ch.memberList() {
					regs = append(regs, reg{Membership{App: app.config().ID, Channel: ch.name, User: m.ID, Info: m.Info}, ch, app, ch.unannounced(m.ID)})
				}
			}
		}
		for _, m := range s.webhooks.registrations(app) {
			regs = append(regs, reg{m: m})
		}
		for _, m := range app.onlineRegistrations() {
			regs = append(regs, reg{m: m})
		}
	}
	for _, m := range s.webhooks.pendingRegistrations() {
		regs = append(regs, reg{m: m})
	}
	here := make(map[string]bool, len(regs))
	for _, r := range regs {
		here[r.m.key()] = true
	}
	var gone []Membership
	for k, m := range wasLost {
		if !here[k] { // left while the broker could not be told
			gone = append(gone, m)
		}
	}
	// This node's own sockets were told when each left (the broker could not be asked then):
	// the other nodes and the webhooks are what is left to tell.
	s.membersGone(gone, false)
	// stop ends a rebuild cut short by a broker failure with the registrations in rest not made.
	// Those that were lost: if the member leaves before the retry, the broker holds nothing for
	// it, and only this remembers to announce it gone.
	stop := func(rest []reg, err error) error {
		s.unsettled.lost = map[string]Membership{}
		for _, r := range rest {
			if m, ok := wasLost[r.m.key()]; ok {
				s.unsettled.lost[r.m.key()] = m
			}
		}
		s.log.Warn().Err(err).Msg("cluster: re-registering presence members stopped; retrying")
		return err
	}
	for i, r := range regs {
		ctx, cancel := bounded(context.Background())
		first, err := s.cluster.broker.Join(ctx, r.m)
		cancel()
		if err != nil {
			return stop(regs[i:], err)
		}
		if r.ch != nil {
			unknown := wasReaped[r.m.key()] || r.unannounced // to the other nodes
			if ch := r.app.hub.lookup(r.m.Channel); ch == nil || !ch.hasMember(r.m.User) {
				// Left since the list above was taken, its own Leave finding no entry to remove
				// (ErrNotHeld): take back the entry just made, and tell the other nodes if they
				// knew of the member. A Leave that came after the Join above removed the entry
				// and told them itself; this one then finds nothing.
				ctx, cancel := bounded(context.Background())
				last, err := s.cluster.broker.Leave(ctx, r.m)
				cancel()
				if err != nil && !errors.Is(err, ErrNotHeld) {
					// The entry stays in the broker, which the retry drops and finds lost.
					return stop(regs[i+1:], err)
				}
				if last && !unknown {
					s.membersGone([]Membership{r.m}, false)
				}
				continue
			}
			if first && unknown {
				s.cluster.broadcast(busMsg{T: busAdded, App: r.m.App, Channels: []string{r.m.Channel}, User: r.m.User, Info: r.m.Info})
			}
			r.ch.setUnannounced(r.m.User, false)
		} else {
			s.webhooks.registered(r.m, first)
		}
	}
	s.webhooks.forgetDeferred(here)
	s.log.Info().Int("registrations", len(regs)).Msg("cluster: presence members registered")
	return nil
}

// MembersGone implements Node: a dead node's members left cluster-wide.
func (s *Server) MembersGone(ms []Membership) { s.membersGone(ms, true) }

// membersGone announces ms gone: presence members first, then member_removed webhooks, then
// channel_vacated ones, the order a leave makes. tellLocal says whether this node's sockets are
// to hear it too (a dead node's members: yes; this node's own, which left while the broker
// failed: they were told then).
func (s *Server) membersGone(ms []Membership, tellLocal bool) {
	rank := func(m Membership) int {
		switch {
		case strings.HasPrefix(m.Channel, occupiedPrefix):
			return 2
		case strings.HasPrefix(m.Channel, membersPrefix):
			return 1
		}
		return 0
	}
	sort.SliceStable(ms, func(i, j int) bool { return rank(ms[i]) < rank(ms[j]) })
	for _, m := range ms {
		s.memberGone(m, tellLocal)
	}
}

func (s *Server) memberGone(m Membership, tellLocal bool) {
	app := s.appByID(m.App)
	if app == nil || s.webhooks.gone(app, m) {
		return
	}
	if m.Channel == onlinePrefix { // a dead node's signed-in user, on no other node: offline
		app.notifyWatchers(m.User, false)
		s.cluster.broadcast(busMsg{T: busOffline, App: m.App, User: m.User})
		return
	}
	if ch := app.hub.lookup(m.Channel); tellLocal && ch != nil && !ch.hasMember(m.User) {
		ch.broadcast(memberRemovedFrame(m.Channel, m.User), nil)
	}
	s.cluster.broadcast(busMsg{T: busRemoved, App: m.App, Channels: []string{m.Channel}, User: m.User})
}

// presenceJoin is called when a user's first socket on this node joined a presence channel; it
// reports whether member_added is due (the user's first socket cluster-wide, §5.4), and whether
// the other nodes are to be told now: not when the broker failed, because Reconnected tells them
// once it is back (a message queued through the outage as well would announce the user twice).
func (c *cluster) presenceJoin(ctx context.Context, app *App, ch *Channel, user string, info []byte) (announce, tellOthers bool) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	first, err := c.broker.Join(ctx, Membership{App: app.config().ID, Channel: ch.name, User: user, Info: info})
	if err != nil {
		// Announce to this node's sockets; Reconnected registers the member and tells the
		// other nodes once the broker is back.
		c.failed(err)
		ch.setUnannounced(user, true)
		return true, false
	}
	return first, first
}

// presenceLeave is called when a user's last socket on this node left; it reports whether
// member_removed is due cluster-wide, and whether the other nodes are to be told now: not when
// the broker failed, because Reconnected finds the member lost and announces it gone then.
func (c *cluster) presenceLeave(ctx context.Context, app *App, channel, user string) (announce, tellOthers bool) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	last, err := c.broker.Leave(ctx, Membership{App: app.config().ID, Channel: channel, User: user})
	if errors.Is(err, ErrNotHeld) {
		// The rebuild after an outage dropped this node's entry and has not put it back: this
		// node's sockets hear of the leave now if no other node holds the user; the rebuild
		// tells the other nodes (Reconnected).
		present, err := c.broker.Present(ctx, app.config().ID, channel, []string{user})
		if err != nil {
			c.failed(err)
			return true, false
		}
		return !present[0], false
	}
	if err != nil {
		c.failed(err)
		return true, false
	}
	return last, last
}

// register joins (up) or leaves m and reports whether that changed it cluster-wide: the first
// join or the last leave. Unlike transition it reports a broker failure instead of taking the
// change to be the cluster's.
func (c *cluster) register(ctx context.Context, m Membership, up bool) (bool, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	var changed bool
	var err error
	if up {
		changed, err = c.broker.Join(ctx, m)
	} else {
		changed, err = c.broker.Leave(ctx, m)
		if errors.Is(err, ErrNotHeld) {
			return false, nil // not registered (a rebuild dropped it): this leave changes nothing
		}
	}
	if err != nil {
		c.failed(err)
	}
	return changed, err
}

// transition is register for the watchlist's online state: when the broker fails, the change is
// taken to be the cluster's, so this node's watchers still hear of it (a later report of the
// same state is not told again, watchlist.go).
func (c *cluster) transition(ctx context.Context, m Membership, up bool) bool {
	changed, err := c.register(ctx, m, up)
	return changed || err != nil
}

// failed logs a broker failure at most once per interval, so an outage is one line, not
// one per socket.
func (c *cluster) failed(err error) {
	now := time.Now().UnixNano()
	last := c.errAt.Load()
	if now-last < int64(10*time.Second) || !c.errAt.CompareAndSwap(last, now) {
		return
	}
	c.log.Warn().Err(err).Msg("cluster: broker unavailable, serving from this node's state")
}

// members is a presence channel's member list: the cluster's, plus this node's own (a member
// whose Join is still in flight on this node is already here). partial is true when the broker
// did not answer and the list is this node's only.
func (c *cluster) members(ctx context.Context, app *App, ch *Channel, name string) (_ []Member, partial bool) {
	var local []Member
	if ch != nil {
		local = ch.memberList()
	}
	ctx, cancel := bounded(ctx)
	defer cancel()
	remote, err := c.broker.Members(ctx, app.config().ID, name)
	if err != nil {
		c.failed(err)
		return local, true
	}
	seen := make(map[string]bool, len(remote))
	for i, m := range remote {
		seen[m.ID] = true
		if len(m.Info) > 0 && !json.Valid(m.Info) {
			// The broker's store is written by every node (and by anyone else who can write to
			// Redis): user_info that is not JSON would corrupt each frame it is embedded in.
			c.rlog.event(zerolog.WarnLevel, "cluster_member_info").Str("app", app.config().ID).Str("channel", name).
				Str("user_id", truncate(m.ID, 64)).Msg("cluster: presence member from the broker has invalid user_info JSON; sent as null")
			remote[i].Info = []byte("null")
		}
	}
	for _, m := range local {
		if !seen[m.ID] {
			remote = append(remote, m)
		}
	}
	return remote, false
}

// counts are a channel's subscriptions and presence users across the cluster; partial says some
// nodes' share is missing.
func (c *cluster) counts(ctx context.Context, app *App, name string) (subs, users int, partial bool) {
	ch := app.hub.lookup(name)
	if ch != nil {
		subs, users = ch.counts()
	}
	answers, partial := c.ask(ctx, question{Q: askChannel, App: app.config().ID, Channel: name})
	for _, a := range answers {
		subs += a.Subs
	}
	if typeOf(name).kind == kindPresence {
		ms, p := c.members(ctx, app, ch, name)
		users, partial = len(ms), partial || p
	}
	return subs, users, partial
}

// PartialHeader marks an API answer given from this node's view only, because the other nodes
// could not be asked (the broker is down or some did not answer in time): the numbers are a
// lower bound, not the cluster's.
const PartialHeader = "X-Frontdoor-Partial"

// markPartial sets PartialHeader on r's response when partial.
func markPartial(r *apiRequest, partial bool) {
	if partial {
		r.ctx.Response.Header.Set(PartialHeader, "cluster-unavailable")
	}
}

// Ready reports whether this node is connected to its cluster (nil for a single node).
func (s *Server) Ready() error {
	return s.cluster.broker.Healthy()
}

func memberAddedFrame(channel, user string, info []byte) []byte {
	if len(info) == 0 {
		info = []byte("null")
	}
	return eventFrame("pusher_internal:member_added", channel, `{"user_id":`+string(appendJSONString(nil, user))+`,"user_info":`+string(info)+`}`, "")
}

func memberRemovedFrame(channel, user string) []byte {
	return eventFrame("pusher_internal:member_removed", channel, `{"user_id":`+string(appendJSONString(nil, user))+`}`, "")
}

// cachedEventJSON is how a cache channel's last event is kept in the broker.
func cachedEventJSON(name, data string) []byte {
	b, _ := json.Marshal(struct {
		Name string `json:"name"`
		Data string `json:"data"`
	}{name, data})
	return b
}

// rememberCache stores an API event of the cache channels among channels in the broker, before
// the API answers, so a subscriber on any node right after the publish finds it, even before the
// broadcast has reached that node (§5.6). Alone, the Hub's copy is the only one.
func (c *cluster) rememberCache(ctx context.Context, app *App, name string, channels []string, data string) {
	if c.alone {
		return
	}
	cfg := app.config()
	for _, ch := range channels {
		if typeOf(ch).cache {
			ctx, cancel := bounded(ctx)
			if err := c.broker.SetCache(ctx, cfg.ID, ch, cachedEventJSON(name, data), time.Duration(cfg.CacheTTL)*time.Second); err != nil {
				c.failed(err)
			}
			cancel()
		}
	}
}

// remoteCache fetches a cache channel's last event from the broker when this node has none
// (it started after the publish, §5.6), remembers it locally and returns the frame.
func (c *cluster) remoteCache(ctx context.Context, app *App, channel string) []byte {
	ctx, cancel := bounded(ctx)
	defer cancel()
	raw, ttl, ok, err := c.broker.Cache(ctx, app.config().ID, channel)
	if err != nil {
		c.failed(err)
		return nil
	}
	var ev struct {
		Name string `json:"name"`
		Data string `json:"data"`
	}
	if !ok || json.Unmarshal(raw, &ev) != nil || ttl <= 0 {
		return nil
	}
	frame := eventFrame(ev.Name, channel, ev.Data, "")
	app.hub.setCache(channel, frame, ev.Data, ttl)
	return frame
}
