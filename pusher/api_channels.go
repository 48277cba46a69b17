package pusher

import (
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// apiChannels is GET /apps/{id}/channels (§8.5): occupied channels, optionally by prefix.
func (s *Server) apiChannels(r *apiRequest) int {
	prefix := r.q.Get("filter_by_prefix")
	attrs := map[string]bool{}
	for _, a := range strings.Split(r.q.Get("info"), ",") {
		switch a = strings.TrimSpace(a); a {
		case "":
		case "user_count":
			if !strings.HasPrefix(prefix, "presence-") {
				return jsonError(r.ctx, fasthttp.StatusBadRequest, "info=user_count needs filter_by_prefix=presence-")
			}
			attrs[a] = true
		case "subscription_count":
			attrs[a] = true
		default:
			return jsonError(r.ctx, fasthttp.StatusBadRequest, "unknown info attribute "+truncate(a, 40)+" (user_count, subscription_count)")
		}
	}
	// Occupied channels with their subscriptions: this node's, plus every other node's (§8.5).
	subs := map[string]int{}
	for _, ch := range r.app.hub.channelsSnapshot() {
		if strings.HasPrefix(ch.name, prefix) {
			n, _ := ch.counts()
			subs[ch.name] += n
		}
	}
	answers, partial := s.cluster.ask(r.ctx, question{Q: askChannels, App: r.app.config().ID, Prefix: prefix})
	for _, a := range answers {
		for name, n := range a.Channels {
			subs[name] += n
		}
	}
	out := map[string]map[string]int{}
	for name, n := range subs {
		info := map[string]int{}
		if attrs["subscription_count"] {
			info["subscription_count"] = n
		}
		if attrs["user_count"] {
			ms, p := s.cluster.members(r.ctx, r.app, r.app.hub.lookup(name), name)
			info["user_count"], partial = len(ms), partial || p
		}
		out[name] = info
	}
	markPartial(r, partial)
	return jsonOK(r.ctx, map[string]any{"channels": out})
}

// apiChannel is GET /apps/{id}/channels/{name} (§8.5).
func (s *Server) apiChannel(r *apiRequest) int {
	name := strings.TrimPrefix(routeOf(r), "channels/")
	if !validChannelName(name) {
		return jsonError(r.ctx, fasthttp.StatusBadRequest, "invalid channel name "+truncate(name, 64))
	}
	typ := typeOf(name)
	out := map[string]any{}
	subs, users, partial := s.cluster.counts(r.ctx, r.app, name)
	markPartial(r, partial)
	out["occupied"] = subs > 0
	for _, a := range strings.Split(r.q.Get("info"), ",") {
		switch a = strings.TrimSpace(a); a {
		case "":
		case "user_count":
			if typ.kind != kindPresence {
				return jsonError(r.ctx, fasthttp.StatusBadRequest, "info=user_count is only valid for presence channels")
			}
			out["user_count"] = users
		case "subscription_count":
			// Every channel type, presence included: Pusher answers it there too, and its SDKs
			// ask for user_count,subscription_count together.
			out["subscription_count"] = subs
		case "cache":
			if !typ.cache {
				return jsonError(r.ctx, fasthttp.StatusBadRequest, "info=cache is only valid for cache channels")
			}
			c, ok := r.app.hub.getCache(name)
			if !ok && s.cluster.remoteCache(r.ctx, r.app, name) != nil { // a node that started after the publish
				c, ok = r.app.hub.getCache(name)
			}
			if ok {
				out["cache"] = map[string]any{"data": c.data, "ttl": int(time.Until(c.expires).Seconds())}
			} else {
				out["cache"] = nil
			}
		default:
			return jsonError(r.ctx, fasthttp.StatusBadRequest, "unknown info attribute "+truncate(a, 40))
		}
	}
	return jsonOK(r.ctx, out)
}

// apiChannelUsers is GET /apps/{id}/channels/{name}/users (§8.5): presence channels only.
func (s *Server) apiChannelUsers(r *apiRequest) int {
	name := strings.TrimSuffix(strings.TrimPrefix(routeOf(r), "channels/"), "/users")
	if !validChannelName(name) || typeOf(name).kind != kindPresence {
		return jsonError(r.ctx, fasthttp.StatusBadRequest, "users are only listed for presence channels")
	}
	users := []map[string]string{}
	ms, partial := s.cluster.members(r.ctx, r.app, r.app.hub.lookup(name), name)
	markPartial(r, partial)
	for _, m := range ms {
		users = append(users, map[string]string{"id": m.ID})
	}
	return jsonOK(r.ctx, map[string]any{"users": users})
}

// apiConnections is Reverb's GET /apps/{id}/connections, kept for its users.
func (s *Server) apiConnections(r *apiRequest) int {
	n := r.app.conns.Load()
	answers, partial := s.cluster.ask(r.ctx, question{Q: askConnections, App: r.app.config().ID})
	markPartial(r, partial)
	for _, a := range answers {
		n += a.Connections
	}
	return jsonOK(r.ctx, map[string]int64{"connections": n})
}

// apiTerminate is POST /apps/{id}/users/{user}/terminate_connections (§7, §8.6): close the
// union of sockets signed in as the user and sockets whose presence user_id is the user, with
// 4009 (pusher-js does not reconnect on its own).
func (s *Server) apiTerminate(r *apiRequest) int {
	user := strings.TrimSuffix(strings.TrimPrefix(routeOf(r), "users/"), "/terminate_connections")
	r.app.terminate(user)
	s.cluster.broadcast(busMsg{T: busTerminate, App: r.app.config().ID, User: user})
	return jsonOK(r.ctx, struct{}{})
}

// terminate closes this node's sockets of the user.
func (a *App) terminate(user string) {
	victims := map[*Socket]struct{}{}
	for _, sock := range a.signedInSockets(user) {
		victims[sock] = struct{}{}
	}
	a.sockets.Range(func(k, _ any) bool {
		sock := k.(*Socket)
		sock.mu.Lock()
		sock.subs.each(func(_, uid string) bool {
			if uid == user {
				victims[sock] = struct{}{}
				return false
			}
			return true
		})
		sock.mu.Unlock()
		return true
	})
	for sock := range victims {
		sock.kick("terminated", ErrTerminated)
	}
}

// routeOf is the path after /apps/{id}/, without the mount prefix.
func routeOf(r *apiRequest) string {
	p := string(r.ctx.Path())
	i := strings.Index(p, "/apps/"+r.app.config().ID+"/")
	return p[i+len("/apps/"+r.app.config().ID+"/"):]
}
