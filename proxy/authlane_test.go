package proxy

import (
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// authPost sends what pusher-js sends to authorize a channel, from any goroutine.
func authPost(front, path string, ms int) (int, http.Header, error) {
	form := url.Values{"socket_id": {"1.2"}, "channel_name": {"private-orders"}}.Encode()
	req, err := http.NewRequest("POST", front+path+"?ms="+strconv.Itoa(ms), strings.NewReader(form))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header, nil
}

// TestAuthLaneKeepsPagesServed: php-fpm with 4 workers, 40 slow authorizations at once (a
// reconnect storm). They run 2 at a time (the lane is half the pool), so a page request is
// answered from the other half while most of them still wait. Without the lane the page joins
// the pool's queue behind every authorization. The pool's size is max_conns=4, or, by default,
// what the pool learned (4, from page traffic before the storm).
func TestAuthLaneKeepsPagesServed(t *testing.T) {
	for _, learned := range []bool{false, true} {
		name := "max_conns"
		if learned {
			name = "learned"
		}
		t.Run(name, func(t *testing.T) { authStorm(t, learned) })
	}
}

func authStorm(t *testing.T, learned bool) {
	fpm := startPHPFPM(t, 4)
	upstream := fpm.unixURL() + "?max_conns=4"
	if learned {
		upstream = fpm.unixURL()
	}
	h, err := New(Config{Root: root(t), Upstreams: []string{upstream}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	front := serveFront(t, h)
	if learned {
		if st := h.AuthLane(); st.Slots != 0 {
			t.Fatalf("lane before the pool knows php-fpm's size: %+v, want no slots counted", st)
		}
		u := h.upstreams[0].(*fcgiUpstream)
		loadUntil(t, front, 16, "/slow?ms=5", func() bool { n, _ := u.poolState(); return n == 4 })
	}
	const storm = 40
	var done atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan string, storm)
	for i := range storm {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := "/broadcasting/auth"
			if i%4 == 0 {
				path = "/broadcasting/user-auth"
			}
			code, _, err := authPost(front, path, 300)
			if err != nil || code != 200 {
				errs <- path + ": " + strconv.Itoa(code) + " " + errString(err)
			}
			done.Add(1)
		}()
	}
	waitFor(t, "the storm queued in the lane", func() bool { return h.AuthLane().Waiting >= storm/2 })
	if st := h.AuthLane(); st.Slots != 2 || st.Active != 2 {
		t.Fatalf("lane: %+v, want 2 slots, both busy", st)
	}
	resp, body := do(t, mustReq(t, "GET", front+"/slow?ms=1", nil))
	answered := done.Load()
	if resp.StatusCode != 200 || string(body) != "slow done" {
		t.Fatalf("page during the storm: %d %q", resp.StatusCode, body)
	}
	if answered > storm/2 {
		t.Fatalf("the page was answered only after %d of %d authorizations: it waited behind them", answered, storm)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if st := h.AuthLane(); st.Active != 0 || st.Waiting != 0 || st.Refused != 0 || st.PerSecond <= 0 {
		t.Fatalf("lane after the storm: %+v", st)
	}
}

// TestAuthLaneBounded: beyond AuthQueue waiting authorizations, and after AuthQueueTimeout of
// waiting, an authorization gets 503 with Retry-After, counted as refused; pages are untouched.
func TestAuthLaneBounded(t *testing.T) {
	fpm := startPHPFPM(t, 4)
	h, err := New(Config{Root: root(t), Upstreams: []string{fpm.unixURL() + "?max_conns=4"},
		AuthQueue: 5, AuthQueueTimeout: 500 * time.Millisecond}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	front := serveFront(t, h)
	const storm = 20
	type result struct {
		code  int
		retry string
		err   error
	}
	results := make(chan result, storm)
	for range storm {
		go func() {
			code, hdr, err := authPost(front, "/broadcasting/auth", 2000)
			results <- result{code, hdr.Get("Retry-After"), err}
		}()
	}
	var ok, refused int
	for range storm {
		r := <-results
		switch {
		case r.err != nil:
			t.Fatal(r.err)
		case r.code == 200:
			ok++
		case r.code == 503:
			if n, err := strconv.Atoi(r.retry); err != nil || n < 1 {
				t.Errorf("503 with Retry-After %q", r.retry)
			}
			refused++
		default:
			t.Errorf("status %d", r.code)
		}
		if refused == 1 {
			// While the lane is full, a page still gets through.
			if resp, body := do(t, mustReq(t, "GET", front+"/slow?ms=1", nil)); resp.StatusCode != 200 {
				t.Fatalf("page while the lane is full: %d %q", resp.StatusCode, body)
			}
		}
	}
	// 2 run; the 18 others are refused at once (queue full) or after 500 ms of waiting, while
	// the two running hold their slots for 2 s.
	if ok != 2 || refused != storm-2 || h.AuthLane().Refused != int64(refused) {
		t.Fatalf("%d answered, %d refused (lane counted %d); want 2 and %d", ok, refused, h.AuthLane().Refused, storm-2)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestAuthLaneSize: half the pool, at least one, never all of a pool of two or more; no limit
// while the pool's size is unknown.
func TestAuthLaneSize(t *testing.T) {
	cfg := Config{}.withDefaults()
	for _, c := range []struct{ size, want int }{{0, noLimit}, {1, 1}, {2, 1}, {3, 1}, {4, 2}, {9, 4}, {64, 32}} {
		if l := newAuthLane(func() int { return c.size }, cfg); l == nil || l.slots() != c.want {
			t.Errorf("pool of %d: %+v, want %d slots", c.size, l, c.want)
		}
	}
	cfg.AuthLaneShare = 1
	if l := newAuthLane(func() int { return 4 }, cfg); l.slots() != 3 {
		t.Errorf("share 1 of 4: %d slots, want 3 (one kept for pages)", l.slots())
	}
	cfg.AuthLaneShare = -1
	if newAuthLane(func() int { return 4 }, cfg) != nil {
		t.Error("a lane while off")
	}
}
