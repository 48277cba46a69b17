package pusher

import (
	"context"
	"strings"
	"time"
)

// Shutdown's 4200 closes, paced to what the app's PHP can take.
//
// Every socket told to reconnect comes back (to the new process of a restart, or to another
// node) and authorizes each private and presence channel again, and signs in again, through
// the app's /broadcasting/auth: one PHP request each. Closing everyone within a second sends
// all of those to PHP at once, and pages time out behind them. So the closes are spread evenly
// over the time PHP needs for all those authorizations at the rate it answers them
// (Config.AuthRate, measured by the proxy's authorization lane):
//
//	window = clamp(authorizations / rate, 1 s, time left before the shutdown deadline − 2 s)
//
// Without a rate (no php-fpm pool with max_conns, or an HTTP upstream) the window is 1 s, as it
// always was. The margin leaves the last sockets time to close and the webhooks to go out.
const (
	minCloseWindow = time.Second
	closeMargin    = 2 * time.Second
	closeTick      = 50 * time.Millisecond // closes go out in steps this far apart
)

// reauths is how many PHP requests this socket's client makes when it reconnects: one per
// private or presence channel, and one to sign in again.
func (s *Socket) reauths() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	if s.user != "" {
		n++
	}
	s.subs.each(func(name, _ string) bool {
		if strings.HasPrefix(name, "private-") || strings.HasPrefix(name, "presence-") {
			n++
		}
		return true
	})
	return n
}

// closeWindow is the time over which n authorizations reach PHP at rate per second, within
// [minCloseWindow, left − closeMargin] (left ≤ 0: no deadline).
func closeWindow(auths int, rate float64, left time.Duration) time.Duration {
	w := minCloseWindow
	if rate > 0 {
		w = max(w, time.Duration(float64(auths)/rate*float64(time.Second)))
	}
	if left > 0 {
		w = min(w, max(minCloseWindow, left-closeMargin))
	}
	return w
}

// closeAllPaced tells every socket in all to reconnect, spread over closeWindow.
func (s *Server) closeAllPaced(ctx context.Context, all []*Socket) {
	if len(all) == 0 {
		return
	}
	auths := 0
	var rate float64
	if s.authRate != nil {
		rate = s.authRate()
		for _, sock := range all {
			auths += sock.reauths()
		}
	}
	var left time.Duration
	if dl, ok := ctx.Deadline(); ok {
		left = time.Until(dl)
	}
	window := closeWindow(auths, rate, left)
	steps := max(1, min(len(all), int(window/closeTick)))
	s.log.Info().Int("sockets", len(all)).Int("authorizations", auths).Float64("auth_per_second", rate).
		Dur("window", window).Msg("shutdown: telling clients to reconnect, paced for PHP")
	start := time.Now()
	for i := range steps {
		// Step i closes the sockets up to its share, so rounding never bunches them at the end.
		from, to := len(all)*i/steps, len(all)*(i+1)/steps
		for _, sock := range all[from:to] {
			sock.closeWith(ErrRestarting)
		}
		if i == steps-1 {
			break
		}
		select {
		case <-time.After(time.Until(start.Add(window * time.Duration(i+1) / time.Duration(steps)))):
		case <-ctx.Done():
		}
	}
}
