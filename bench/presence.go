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
	p := newPresenceRun(r, name, s)
	if err := p.startObservers(ctx); err != nil {
		p.res.Errors = append(p.res.Errors, "observer: "+err.Error())
		return p.res
	}
	m := r.monitor(name, p.events.Load, func() string { return fmt.Sprintf("joins %d", p.joins.Load()) })
	secs := p.churn(ctx)
	j := p.joins.Load()
	// Every leave must reach the observers; give them up to 5 s.
	for deadline := time.Now().Add(5 * time.Second); (p.added.Load() < j || p.removed.Load() < j) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	apiWrong, leftover := p.checkChannels()
	p.closeObservers()
	m.finish(&p.res)
	p.report(j, secs, apiWrong, leftover)
	return p.res
}

// presenceRun is one presence run: its clients, observers, and the tallies its phases share.
type presenceRun struct {
	s        Sizes
	channels int
	res      Result
	ws       *wsClient
	api      *apiClient
	errs     *errorLog
	sg       signer

	// Observer side.
	obs                               []*presenceObserver
	readers                           sync.WaitGroup
	closing                           atomic.Bool // observers are being closed: their loop errors are expected
	events, added, removed, anomalies atomic.Uint64

	// Member side.
	joins, joinFailed, badLists counter
	lat                         shardedHist
}

// presenceObserver is the socket that stays on one channel and follows its member list.
type presenceObserver struct {
	c       *wsConn
	mu      sync.Mutex
	members map[string]bool
}

// presenceChannel names the k-th presence channel.
func presenceChannel(k int) string { return fmt.Sprintf("presence-bench-%d", k) }

// newPresenceRun is the setup phase: the Result's title and params, and the clients.
func newPresenceRun(r *runner, name string, s Sizes) *presenceRun {
	channels := max(1, s.Clients/5)
	return &presenceRun{s: s, channels: channels,
		res: Result{Scenario: "presence", Name: name,
			Title:     fmt.Sprintf("%d clients join and leave %d presence channel(s) as new users for %s", s.Clients, channels, s.Duration),
			Params:    params("clients", s.Clients, "channels", channels, "duration", s.Duration),
			RateLabel: "member events seen by observers",
		},
		ws:   newWSClient(r.e, r.o.Target.Insecure, s.Clients+channels),
		api:  newAPIClient(r.e, r.o.Target.Insecure, 2),
		errs: newErrorLog(),
		sg:   r.e.signer,
	}
}

// join subscribes c to presence channel ch as user, and returns the member list it got.
func (p *presenceRun) join(c *wsConn, ch, user string) (string, error) {
	cd := `{"user_id":"` + user + `","user_info":{"bench":true}}`
	return c.subscribe(ch, p.sg.channelAuth(c.socketID, ch, cd), cd, p.ws.timeout, nil)
}

// startObservers is the observer phase: one observer joins each channel and starts following
// its member events. On a failure it closes the observers already started.
func (p *presenceRun) startObservers(ctx context.Context) error {
	p.obs = make([]*presenceObserver, p.channels)
	for k := range p.obs {
		c, err := p.ws.dial(ctx)
		if err == nil {
			_, err = p.join(c, presenceChannel(k), fmt.Sprintf("observer-%d", k))
		}
		if err != nil {
			for _, o := range p.obs[:k] {
				o.c.close()
			}
			return err
		}
		o := &presenceObserver{c: c, members: map[string]bool{}}
		p.obs[k] = o
		p.readers.Go(func() {
			err := c.loop(func(msg []byte) { p.observe(o, msg) })
			if !p.closing.Load() {
				p.errs.add(fmt.Errorf("observer closed: %w", err))
			}
		})
	}
	return nil
}

// observe is an observer's per-frame check: a member_added for a member already present, or a
// member_removed for one absent, is an anomaly.
func (p *presenceRun) observe(o *presenceObserver, msg []byte) {
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
		p.anomalies.Add(1)
		return
	}
	var id string
	if json.Unmarshal(m.UserID, &id) != nil {
		id = string(m.UserID) // numeric ids
	}
	p.events.Add(1)
	o.mu.Lock()
	defer o.mu.Unlock()
	if f.Event == "pusher_internal:member_added" {
		p.added.Add(1)
		if o.members[id] {
			p.anomalies.Add(1)
		}
		o.members[id] = true
	} else {
		p.removed.Add(1)
		if !o.members[id] {
			p.anomalies.Add(1)
		}
		delete(o.members, id)
	}
}

// churn is the join/leave phase: s.Clients loops join and leave as new users for s.Duration.
// It returns its length in seconds.
func (p *presenceRun) churn(ctx context.Context) float64 {
	wctx, cancel := context.WithTimeout(ctx, p.s.Duration)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < p.s.Clients; w++ {
		wg.Go(func() {
			for i := 0; wctx.Err() == nil; i++ {
				p.joinAndLeave(w, i)
			}
		})
	}
	wg.Wait()
	return time.Since(start).Seconds()
}

// joinAndLeave is one round of client loop w: connect, join as its i-th user, check the member
// list, leave.
func (p *presenceRun) joinAndLeave(w, i int) {
	ch := presenceChannel(w % p.channels)
	user := fmt.Sprintf("u-%d-%d", w, i)
	t0 := time.Now()
	c, err := p.ws.dial(context.Background())
	if err != nil {
		p.joinFailed.Add(w, 1)
		p.errs.add(err)
		return
	}
	list, err := p.join(c, ch, user)
	if err != nil {
		p.joinFailed.Add(w, 1)
		p.errs.add(err)
		c.closeGraceful(2 * time.Second)
		return
	}
	p.lat.Record(w, time.Since(t0))
	p.joins.Add(w, 1)
	if err := checkMemberList(list, user, fmt.Sprintf("observer-%d", w%p.channels)); err != nil {
		p.badLists.Add(w, 1)
		p.errs.add(err)
	}
	c.closeGraceful(2 * time.Second)
}

// checkChannels is the final check: after everyone left, the API must count only the observer
// on each channel, and each observer's member list must be empty.
func (p *presenceRun) checkChannels() (apiWrong, leftover uint64) {
	for k := range p.obs {
		body, err := p.api.get("/apps/"+p.sg.appID+"/channels/"+presenceChannel(k), url.Values{"info": {"user_count"}})
		var st struct {
			UserCount int `json:"user_count"`
		}
		if err == nil {
			err = json.Unmarshal(body, &st)
		}
		if err != nil {
			p.errs.add(fmt.Errorf("channel info: %w", err))
			apiWrong++
		} else if st.UserCount != 1 {
			p.errs.add(fmt.Errorf("channel info: user_count %d after all users left, want 1 (the observer)", st.UserCount))
			apiWrong++
		}
		p.obs[k].mu.Lock()
		leftover += uint64(len(p.obs[k].members))
		p.obs[k].mu.Unlock()
	}
	return apiWrong, leftover
}

// closeObservers is the teardown phase: close every observer and wait for its reader.
func (p *presenceRun) closeObservers() {
	p.closing.Store(true)
	for _, o := range p.obs {
		o.c.close()
	}
	p.readers.Wait()
}

// report is the result phase: it fills p.res with the counts, rates and latency.
func (p *presenceRun) report(j uint64, secs float64, apiWrong, leftover uint64) {
	res := &p.res
	res.add("joins", "users joined and left", float64(j), "", "higher")
	res.add("joins_per_s", "joins per second", float64(j)/secs, "/s", "higher")
	res.add("member_events_per_s", "member events per second (observers)", float64(p.events.Load())/secs, "/s", "higher")
	res.add("join_failed", "join failures", float64(p.joinFailed.Load()), "", "lower")
	res.add("missing_added", "member_added missing", float64(j-min(j, p.added.Load())), "", "lower")
	res.add("missing_removed", "member_removed missing", float64(j-min(j, p.removed.Load())), "", "lower")
	res.add("member_anomalies", "duplicate or unknown member events", float64(p.anomalies.Load()), "", "lower")
	res.add("bad_member_lists", "wrong member lists on join", float64(p.badLists.Load()), "", "lower")
	res.add("leftover_members", "members left over at the end", float64(leftover), "", "lower")
	res.add("api_count_wrong", "API user_count wrong at the end", float64(apiWrong), "", "lower")
	res.Latencies = []Latency{p.lat.merged().Summary("connect→presence joined")}
	res.Errors = append(res.Errors, p.errs.lines()...)
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
