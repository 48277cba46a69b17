package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// presence churns members through presence channels: s.Clients loops each join a channel as a
// new user (presence auth signed by the bench, spec § 5.3), check the member list they get,
// and leave. One observer per channel counts member_added/member_removed (spec § 5.4); at the
// end every join must have produced exactly one of each, and the API must count one member
// (the observer) per channel.
func (r *runner) presence(ctx context.Context, name string, s Sizes) Result {
	channels := max(1, s.Clients/5)
	res := Result{Scenario: "presence", Name: name,
		Title:     fmt.Sprintf("%d clients join and leave %d presence channel(s) as new users for %s", s.Clients, channels, s.Duration),
		Params:    params("clients", s.Clients, "channels", channels, "duration", s.Duration),
		RateLabel: "member events seen by observers",
	}
	ws := newWSClient(r.e, r.o.Target.Insecure, s.Clients+channels)
	api := newAPIClient(r.e, r.o.Target.Insecure, 2)
	errs := newErrorLog()
	sg := r.e.signer
	chName := func(k int) string { return fmt.Sprintf("presence-bench-%d", k) }
	channelData := func(user string) string {
		return `{"user_id":"` + user + `","user_info":{"bench":true}}`
	}
	join := func(c *wsConn, ch, user string) (string, error) {
		cd := channelData(user)
		return c.subscribe(ch, sg.channelAuth(c.socketID, ch, cd), cd, ws.timeout, nil)
	}

	var events, added, removed, anomalies atomic.Uint64
	type observer struct {
		c       *wsConn
		mu      sync.Mutex
		members map[string]bool
	}
	obs := make([]*observer, channels)
	var readers sync.WaitGroup
	var closing atomic.Bool
	for k := range obs {
		c, err := ws.dial(ctx)
		if err == nil {
			_, err = join(c, chName(k), fmt.Sprintf("observer-%d", k))
		}
		if err != nil {
			res.Errors = append(res.Errors, "observer: "+err.Error())
			for _, o := range obs[:k] {
				o.c.close()
			}
			return res
		}
		o := &observer{c: c, members: map[string]bool{}}
		obs[k] = o
		readers.Go(func() {
			err := c.loop(func(msg []byte) {
				var f frame
				if json.Unmarshal(msg, &f) != nil {
					return
				}
				var m struct {
					UserID json.RawMessage `json:"user_id"`
				}
				if f.Event != "pusher_internal:member_added" && f.Event != "pusher_internal:member_removed" {
					return
				}
				if json.Unmarshal([]byte(f.data()), &m) != nil {
					anomalies.Add(1)
					return
				}
				var id string
				if json.Unmarshal(m.UserID, &id) != nil {
					id = string(m.UserID) // numeric ids
				}
				events.Add(1)
				o.mu.Lock()
				defer o.mu.Unlock()
				if f.Event == "pusher_internal:member_added" {
					added.Add(1)
					if o.members[id] {
						anomalies.Add(1)
					}
					o.members[id] = true
				} else {
					removed.Add(1)
					if !o.members[id] {
						anomalies.Add(1)
					}
					delete(o.members, id)
				}
			})
			if !closing.Load() {
				errs.add(fmt.Errorf("observer closed: %w", err))
			}
		})
	}

	var joins, joinFailed, badLists counter
	var lat shardedHist
	m := r.monitor(name, events.Load, func() string { return fmt.Sprintf("joins %d", joins.Load()) })
	wctx, cancel := context.WithTimeout(ctx, s.Duration)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < s.Clients; w++ {
		wg.Go(func() {
			ch := chName(w % channels)
			for i := 0; wctx.Err() == nil; i++ {
				user := fmt.Sprintf("u-%d-%d", w, i)
				t0 := time.Now()
				c, err := ws.dial(context.Background())
				if err != nil {
					joinFailed.Add(w, 1)
					errs.add(err)
					continue
				}
				list, err := join(c, ch, user)
				if err != nil {
					joinFailed.Add(w, 1)
					errs.add(err)
					c.closeGraceful(2 * time.Second)
					continue
				}
				lat.Record(w, time.Since(t0))
				joins.Add(w, 1)
				if err := checkMemberList(list, user, fmt.Sprintf("observer-%d", w%channels)); err != nil {
					badLists.Add(w, 1)
					errs.add(err)
				}
				c.closeGraceful(2 * time.Second)
			}
		})
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	j := joins.Load()
	// Every leave must reach the observers; give them up to 5 s.
	for deadline := time.Now().Add(5 * time.Second); (added.Load() < j || removed.Load() < j) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	var apiWrong, leftover uint64
	for k := range obs {
		body, err := api.get("/apps/"+sg.appID+"/channels/"+chName(k), url.Values{"info": {"user_count"}})
		var st struct {
			UserCount int `json:"user_count"`
		}
		if err == nil {
			err = json.Unmarshal(body, &st)
		}
		if err != nil {
			errs.add(fmt.Errorf("channel info: %w", err))
			apiWrong++
		} else if st.UserCount != 1 {
			errs.add(fmt.Errorf("channel info: user_count %d after all users left, want 1 (the observer)", st.UserCount))
			apiWrong++
		}
		obs[k].mu.Lock()
		leftover += uint64(len(obs[k].members))
		obs[k].mu.Unlock()
	}
	closing.Store(true)
	for _, o := range obs {
		o.c.close()
	}
	readers.Wait()
	m.finish(&res)
	res.add("joins", "users joined and left", float64(j), "", "higher")
	res.add("joins_per_s", "joins per second", float64(j)/secs, "/s", "higher")
	res.add("member_events_per_s", "member events per second (observers)", float64(events.Load())/secs, "/s", "higher")
	res.add("join_failed", "join failures", float64(joinFailed.Load()), "", "lower")
	res.add("missing_added", "member_added missing", float64(j-min(j, added.Load())), "", "lower")
	res.add("missing_removed", "member_removed missing", float64(j-min(j, removed.Load())), "", "lower")
	res.add("member_anomalies", "duplicate or unknown member events", float64(anomalies.Load()), "", "lower")
	res.add("bad_member_lists", "wrong member lists on join", float64(badLists.Load()), "", "lower")
	res.add("leftover_members", "members left over at the end", float64(leftover), "", "lower")
	res.add("api_count_wrong", "API user_count wrong at the end", float64(apiWrong), "", "lower")
	res.Latencies = []Latency{lat.merged().Summary("connect→presence joined")}
	res.Errors = append(res.Errors, errs.lines()...)
	return res
}

// checkMemberList verifies a presence subscription_succeeded payload: the joining user and the
// channel's observer are both listed, and count matches the ids (spec § 5.4).
func checkMemberList(data, user, observer string) error {
	var p struct {
		Presence struct {
			IDs   []string                   `json:"ids"`
			Hash  map[string]json.RawMessage `json:"hash"`
			Count int                        `json:"count"`
		} `json:"presence"`
	}
	if err := json.Unmarshal([]byte(data), &p); err != nil {
		return fmt.Errorf("member list: %v", err)
	}
	ids := p.Presence.IDs
	switch {
	case p.Presence.Count != len(ids) || len(p.Presence.Hash) != len(ids):
		return fmt.Errorf("member list: count %d, %d ids, %d hash entries", p.Presence.Count, len(ids), len(p.Presence.Hash))
	case !slices.Contains(ids, user):
		return fmt.Errorf("member list: joining user missing")
	case !slices.Contains(ids, observer):
		return fmt.Errorf("member list: observer missing")
	}
	return nil
}
