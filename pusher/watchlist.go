package pusher

import (
	"context"
	"encoding/json"
	"strings"
)

// Watchlists (§7): a socket that signs in with user_data.watchlist is told which of those users
// are online now, then each time one comes online or goes offline. A user is online while at
// least one of their sockets is signed in, anywhere in the cluster: with a broker, "online" is a
// registration under onlinePrefix, so the broker's first/last answers say when it changes and a
// dead node's users go offline with it.
const (
	onlinePrefix      = "#online:"
	maxWatchlist      = 100 // Pusher's limit (§8.7); beyond it 4302 after signin_success
	watchlistTooLarge = 4302
)

// parseWatchlist reads user_data.watchlist: ids as strings (numbers accepted, as for user_id).
func parseWatchlist(userData string) []string {
	var u struct {
		Watchlist []json.RawMessage `json:"watchlist"`
	}
	if json.Unmarshal([]byte(userData), &u) != nil {
		return nil
	}
	out := make([]string, 0, len(u.Watchlist))
	for _, raw := range u.Watchlist {
		var id string
		if json.Unmarshal(raw, &id) != nil {
			id = strings.TrimSpace(string(raw))
			if id == "" || !(id[0] == '-' || id[0] >= '0' && id[0] <= '9') {
				continue
			}
		}
		if id != "" {
			out = append(out, id)
		}
	}
	return out
}

// watchlistFrame is pusher_internal:watchlist_events with the non-empty groups.
func watchlistFrame(online, offline []string) []byte {
	type group struct {
		Name    string   `json:"name"`
		UserIDs []string `json:"user_ids"`
	}
	var events []group
	if len(online) > 0 {
		events = append(events, group{"online", online})
	}
	if len(offline) > 0 {
		events = append(events, group{"offline", offline})
	}
	b, _ := json.Marshal(struct {
		Events []group `json:"events"`
	}{events})
	return eventFrame("pusher_internal:watchlist_events", "", string(b), "")
}

// startWatching registers s as a watcher of ids and sends it their current state.
func (s *Socket) startWatching(ids []string) {
	if len(ids) > maxWatchlist {
		ids = ids[:maxWatchlist]
		defer s.sendError(watchlistTooLarge, "Watchlist over 100 user ids: only the first 100 are watched")
	}
	// Registered under s.mu, which OnClose takes to mark the socket closed: either this sees the
	// socket closed, or OnClose sees s.watching and unregisters it.
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.watching = ids
	app := s.app
	app.usersMu.Lock()
	s.watchEarly = map[string]bool{}
	if app.watchers == nil {
		app.watchers = map[string]map[*Socket]struct{}{}
	}
	online := make([]bool, len(ids))
	for i, id := range ids {
		w := app.watchers[id]
		if w == nil {
			w = map[*Socket]struct{}{}
			app.watchers[id] = w
		}
		w[s] = struct{}{}
		online[i] = len(app.signedIn[id]) > 0
	}
	app.usersMu.Unlock()
	s.mu.Unlock()
	ctx, cancel := bounded(context.Background())
	remote, err := s.srv.cluster.broker.Present(ctx, app.config().ID, onlinePrefix, ids)
	cancel()
	if err != nil {
		s.srv.cluster.failed(err)
	}
	for i := range remote {
		online[i] = online[i] || remote[i]
	}
	// Under usersMu, with what it says recorded: a transition that reached this node after the
	// state above was read, but describes the same state (the broker saw the Join before the bus
	// delivered its "online"), is then not told again. One that reached it while the state was
	// being read (watchEarly) is newer than what was read, and is folded in: the initial state
	// comes first and says each user once.
	app.usersMu.Lock()
	var on, off []string
	told := make(map[string]bool, len(ids))
	for i, id := range ids {
		if early, ok := s.watchEarly[id]; ok {
			online[i] = early
		}
		told[id] = online[i]
		if online[i] {
			on = append(on, id)
		} else {
			off = append(off, id)
		}
	}
	s.watchEarly = nil
	s.watchTold = told
	s.send(watchlistFrame(on, off))
	app.usersMu.Unlock()
}

// stopWatching unregisters a closing socket.
func (s *Socket) stopWatching(ids []string) {
	a := s.app
	a.usersMu.Lock()
	for _, id := range ids {
		if w := a.watchers[id]; w != nil {
			delete(w, s)
			if len(w) == 0 {
				delete(a.watchers, id)
			}
		}
	}
	a.usersMu.Unlock()
}

// notifyWatchers tells this node's watchers of user that it came online or went offline,
// skipping those already told that state. Frames go out under usersMu, so each watcher gets the
// changes in the order they were recorded.
func (a *App) notifyWatchers(user string, online bool) {
	var frame []byte
	if online {
		frame = watchlistFrame([]string{user}, nil)
	} else {
		frame = watchlistFrame(nil, []string{user})
	}
	a.usersMu.Lock()
	n := 0
	var last *Socket
	for s := range a.watchers[user] {
		if s.watchEarly != nil { // its initial state is being read: told with it
			s.watchEarly[user] = online
			continue
		}
		if was, ok := s.watchTold[user]; ok && was == online {
			continue
		}
		if s.watchTold != nil {
			s.watchTold[user] = online
		}
		s.sendShared(frame)
		n++
		last = s
	}
	a.usersMu.Unlock()
	if last != nil && last.srv.trace { // once for every watcher, after the lock
		last.srv.traceFanout(a, frame, n)
	}
}

// userOnline is called when a user's first socket on this node signed in.
func (s *Server) userOnline(app *App, user string) {
	if !s.cluster.transition(context.Background(), registration(app, onlinePrefix, "", user), true) {
		return
	}
	app.notifyWatchers(user, true)
	s.cluster.broadcast(busMsg{T: busOnline, App: app.config().ID, User: user})
}

// userOffline is called when a user's last signed-in socket on this node closed.
func (s *Server) userOffline(app *App, user string) {
	if !s.cluster.transition(context.Background(), registration(app, onlinePrefix, "", user), false) {
		return
	}
	app.notifyWatchers(user, false)
	s.cluster.broadcast(busMsg{T: busOffline, App: app.config().ID, User: user})
}

// onlineRegistrations are this node's signed-in users, for Reconnected to restore.
func (a *App) onlineRegistrations() []Membership {
	a.usersMu.Lock()
	defer a.usersMu.Unlock()
	out := make([]Membership, 0, len(a.signedIn))
	for user := range a.signedIn {
		out = append(out, registration(a, onlinePrefix, "", user))
	}
	return out
}
