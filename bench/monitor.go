package bench

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// monitor samples the server's /proc figures, the client's CPU time and the scenario's event
// counter once per interval, keeps the series for the report's charts, and redraws one progress
// line when a person is watching.
type monitor struct {
	name     string
	pids     []int
	interval time.Duration
	count    func() uint64 // cumulative scenario events (the series' rate)
	status   func() string // extra progress text, may be nil
	progress io.Writer     // nil: no progress line

	start      time.Time
	mu         sync.Mutex
	samples    []Sample
	srv0, srvN procUsage
	cli0, cliN time.Duration
	rssPeak    int64
	srvErr     error
	stop, done chan struct{}
}

func startMonitor(name string, pids []int, interval time.Duration, progress io.Writer, count func() uint64, status func() string) *monitor {
	m := &monitor{name: name, pids: pids, interval: interval, count: count, status: status, progress: progress,
		start: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	m.srv0, m.srvErr = readProcs(pids)
	m.srvN = m.srv0
	m.rssPeak = m.srv0.rss
	m.cli0 = selfCPU()
	m.cliN = m.cli0
	go m.loop()
	return m
}

func (m *monitor) loop() {
	defer close(m.done)
	t := time.NewTicker(m.interval)
	defer t.Stop()
	lastT, lastCount := m.start, uint64(0)
	for {
		select {
		case <-m.stop:
			return
		case now := <-t.C:
			c := m.count()
			cli := selfCPU()
			srv, err := readProcs(m.pids)
			m.mu.Lock()
			dt := now.Sub(lastT).Seconds()
			s := Sample{T: now.Sub(m.start).Seconds(), Count: float64(c), Rate: float64(c-lastCount) / dt,
				ClientCPU: 100 * (cli - m.cliN).Seconds() / dt}
			if err == nil && len(m.pids) > 0 {
				s.ServerRSS = srv.rss
				s.ServerCPU = 100 * (srv.cpu - m.srvN.cpu).Seconds() / dt
				m.srvN = srv
				m.rssPeak = max(m.rssPeak, srv.rss)
			} else if err != nil && m.srvErr == nil {
				m.srvErr = err
			}
			m.cliN = cli
			m.samples = append(m.samples, s)
			m.mu.Unlock()
			lastT, lastCount = now, c
			if m.progress != nil {
				line := fmt.Sprintf("\r\033[K[%s] %5.1fs  %s/s  total %s", m.name, s.T, groupThousands(int64(s.Rate)), groupThousands(int64(c)))
				if len(m.pids) > 0 {
					line += fmt.Sprintf("  server %s %3.0f%% cpu", mb(s.ServerRSS), s.ServerCPU)
				}
				line += fmt.Sprintf("  client %3.0f%% cpu", s.ClientCPU)
				if m.status != nil {
					line += "  " + m.status()
				}
				fmt.Fprint(m.progress, line)
			}
		}
	}
}

// finish stops sampling and fills r's series and resource use.
func (m *monitor) finish(r *Result) {
	close(m.stop)
	<-m.done
	if m.progress != nil {
		fmt.Fprint(m.progress, "\r\033[K")
	}
	end := time.Now()
	secs := end.Sub(m.start).Seconds()
	cli := selfCPU()
	r.Seconds = secs
	r.Series = m.samples
	r.Client = Usage{CPUSeconds: (cli - m.cli0).Seconds()}
	r.Client.CPUPercent = 100 * r.Client.CPUSeconds / secs
	if len(m.pids) == 0 {
		return
	}
	srv, err := readProcs(m.pids)
	if err != nil {
		r.Errors = append(r.Errors, "server process: "+err.Error())
		srv = m.srvN
	}
	if m.srvErr != nil && err == nil {
		r.Errors = append(r.Errors, "server process: "+m.srvErr.Error())
	}
	r.Server = Usage{CPUSeconds: (srv.cpu - m.srv0.cpu).Seconds(), SysSeconds: (srv.sys - m.srv0.sys).Seconds(), RSSStart: m.srv0.rss,
		RSSPeak: max(m.rssPeak, srv.rss), RSSEnd: srv.rss}
	r.Server.CPUPercent = 100 * r.Server.CPUSeconds / secs
}
