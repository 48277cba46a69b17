package main

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics is frontdoor's Prometheus registry. Counters that live on hot paths stay in the
// packages as atomics and are read at scrape time by collectors here, so neither pusher nor proxy
// imports Prometheus and a publish never touches a metric vector.
type metrics struct {
	registry *prometheus.Registry

	proxyRequests  *prometheus.CounterVec
	proxyDuration  *prometheus.HistogramVec
	proxyBytes     *prometheus.CounterVec
	upstreamErrors *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		proxyRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "frontdoor_proxy_requests_total", Help: "Requests answered by the PHP front door, by upstream and status.",
		}, []string{"upstream", "status"}),
		proxyDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "frontdoor_proxy_request_duration_seconds",
			Help:    "Time from request to the last response byte, by upstream (\"static\" for files).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"upstream"}),
		proxyBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "frontdoor_proxy_response_bytes_total", Help: "Response body bytes sent by the PHP front door.",
		}, []string{"upstream"}),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "frontdoor_upstream_errors_total", Help: "Failed upstream attempts, by upstream and kind (connect, timeout, protocol).",
		}, []string{"upstream", "kind"}),
	}
	m.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.proxyRequests, m.proxyDuration, m.proxyBytes, m.upstreamErrors,
	)
	return m
}

// register adds the collectors that read the running server's state at scrape time.
func (m *metrics) register(srv *server) {
	m.registry.MustRegister(&certCollector{srv: srv})
}

// ObserveRequest implements proxy.Observer.
func (m *metrics) ObserveRequest(upstream string, status int, d time.Duration, bytes int64) {
	m.proxyRequests.WithLabelValues(upstream, strconv.Itoa(status)).Inc()
	m.proxyDuration.WithLabelValues(upstream).Observe(d.Seconds())
	m.proxyBytes.WithLabelValues(upstream).Add(float64(bytes))
}

// ObserveUpstreamError implements proxy.Observer.
func (m *metrics) ObserveUpstreamError(upstream, kind string) {
	m.upstreamErrors.WithLabelValues(upstream, kind).Inc()
}

var certExpiryDesc = prometheus.NewDesc("frontdoor_certificate_expiry_timestamp_seconds",
	"When each served certificate expires (Unix seconds); alert on time() - this.", []string{"name"}, nil)

type certCollector struct{ srv *server }

func (c *certCollector) Describe(ch chan<- *prometheus.Desc) { ch <- certExpiryDesc }

func (c *certCollector) Collect(ch chan<- prometheus.Metric) {
	if c.srv.tls == nil {
		return
	}
	for name, t := range c.srv.tls.Expiries() {
		ch <- prometheus.MustNewConstMetric(certExpiryDesc, prometheus.GaugeValue, float64(t.Unix()), name)
	}
}
