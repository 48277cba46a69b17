package main

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	fdtls "github.com/frontdoorhq/frontdoor/tls"
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
	malformed      *prometheus.CounterVec
	h2Conns        prometheus.Gauge
	h2Errors       *prometheus.CounterVec
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
		malformed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "frontdoor_http_refused_total", Help: "Requests refused before routing, by reason (malformed, header_too_large, timeout, proxy_protocol, proxy_protocol_untrusted).",
		}, []string{"reason"}),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "frontdoor_upstream_errors_total", Help: "Failed upstream attempts, by upstream and kind (connect, timeout, protocol).",
		}, []string{"upstream", "kind"}),
		h2Conns: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "frontdoor_http2_connections", Help: "Open HTTP/2 connections on the TLS listener.",
		}),
		h2Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "frontdoor_http2_errors_total", Help: "HTTP/2 protocol errors refused, by kind: connection or stream, the error code, the cause (conn_ENHANCE_YOUR_CALM_too_many_early_resets is a rapid-reset burst).",
		}, []string{"kind"}),
	}
	m.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.proxyRequests, m.proxyDuration, m.proxyBytes, m.upstreamErrors, m.malformed, m.h2Conns, m.h2Errors,
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "frontdoor_accept_exhausted_total",
			Help: "accept(2) calls that failed because the process or system was out of file descriptors.",
		}, func() float64 { return float64(fdtls.Exhausted()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "frontdoor_connections_shed_total",
			Help: "Connections accepted on the reserve descriptor while out of descriptors and refused at once (503 or close).",
		}, func() float64 { return float64(fdtls.Shed()) }),
	)
	return m
}

// register adds the collectors that read the running server's state at scrape time.
func (m *metrics) register(srv *server) {
	m.registry.MustRegister(&pusherCollector{srv: srv}, &certCollector{srv: srv}, &clusterCollector{srv: srv}, &onDemandCollector{srv: srv})
	m.registry.MustRegister(&workersCollector{srv: srv}, &proxyCollector{srv: srv})
}

var (
	workersRunningDesc = prometheus.NewDesc("frontdoor_workers_running",
		"Running copies of each supervised worker.", []string{"worker"}, nil)
	workerRestartsDesc = prometheus.NewDesc("frontdoor_worker_restarts_total",
		"Times a worker exited on its own and was started again (reloads and shutdowns not counted).", []string{"worker"}, nil)
	workerExitDesc = prometheus.NewDesc("frontdoor_worker_last_exit_code",
		"The last exit code of any copy of a worker (128+N after signal N); absent before the first exit.", []string{"worker"}, nil)
	workerSuppressedDesc = prometheus.NewDesc("frontdoor_worker_log_lines_suppressed_total",
		"Worker output lines not logged because the worker was over its log rate limit.", []string{"worker"}, nil)
)

// workersCollector exposes the supervisor's per-worker totals, read once per scrape.
type workersCollector struct{ srv *server }

func (c *workersCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- workersRunningDesc
	ch <- workerRestartsDesc
	ch <- workerExitDesc
	ch <- workerSuppressedDesc
}

func (c *workersCollector) Collect(ch chan<- prometheus.Metric) {
	for _, w := range c.srv.workers.Summaries() {
		ch <- prometheus.MustNewConstMetric(workersRunningDesc, prometheus.GaugeValue, float64(w.Running), w.Name)
		ch <- prometheus.MustNewConstMetric(workerRestartsDesc, prometheus.CounterValue, float64(w.Restarts), w.Name)
		ch <- prometheus.MustNewConstMetric(workerSuppressedDesc, prometheus.CounterValue, float64(w.DroppedLines), w.Name)
		if w.HasExited {
			ch <- prometheus.MustNewConstMetric(workerExitDesc, prometheus.GaugeValue, float64(w.LastExit), w.Name)
		}
	}
}

var (
	clusterUpDesc = prometheus.NewDesc("frontdoor_cluster_up",
		"1 while this node reaches Redis (absent on a single node).", nil, nil)
	clusterDroppedDesc = prometheus.NewDesc("frontdoor_cluster_dropped_messages_total",
		"Messages for other nodes dropped: Redis down longer than redis.outage_max_age, more than redis.outage_queue waiting, or the publish queue full.", nil, nil)
	webhookJournalLostDesc = prometheus.NewDesc("frontdoor_webhook_journal_lost_total",
		"Webhook events not kept in Redis (Redis down or too slow): delivered by this node only, not by another should it die.", nil, nil)
	clusterQueuedDesc = prometheus.NewDesc("frontdoor_cluster_queued_messages",
		"Messages for other nodes waiting to be published (while Redis is down: kept for its return).", nil, nil)

	webhookBatchesDesc = prometheus.NewDesc("frontdoor_webhook_batches_sent_total",
		"Webhook requests acknowledged with 2xx.", nil, nil)
	webhookFailuresDesc = prometheus.NewDesc("frontdoor_webhook_attempts_failed_total",
		"Webhook delivery attempts that failed (each retry counts).", nil, nil)
	webhookDroppedDesc = prometheus.NewDesc("frontdoor_webhook_events_dropped_total",
		"Webhook events given up on: queue full, retries exhausted, or (without Redis) not delivered within the shutdown timeout.", nil, nil)
)

type clusterCollector struct{ srv *server }

func (c *clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- clusterUpDesc
	ch <- clusterDroppedDesc
	ch <- clusterQueuedDesc
	ch <- webhookJournalLostDesc
	ch <- webhookBatchesDesc
	ch <- webhookFailuresDesc
	ch <- webhookDroppedDesc
}

func (c *clusterCollector) Collect(ch chan<- prometheus.Metric) {
	w := c.srv.pusher.WebhookStats()
	ch <- prometheus.MustNewConstMetric(webhookBatchesDesc, prometheus.CounterValue, float64(w.Sent))
	ch <- prometheus.MustNewConstMetric(webhookFailuresDesc, prometheus.CounterValue, float64(w.Failed))
	ch <- prometheus.MustNewConstMetric(webhookDroppedDesc, prometheus.CounterValue, float64(w.Dropped))
	b := c.srv.broker
	if b == nil {
		return
	}
	up := 1.0
	if b.Healthy() != nil {
		up = 0
	}
	ch <- prometheus.MustNewConstMetric(clusterUpDesc, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(clusterDroppedDesc, prometheus.CounterValue, float64(b.Dropped()))
	ch <- prometheus.MustNewConstMetric(clusterQueuedDesc, prometheus.GaugeValue, float64(b.Queued()))
	ch <- prometheus.MustNewConstMetric(webhookJournalLostDesc, prometheus.CounterValue, float64(b.JournalLost()))
}

func (m *metrics) refusedRequest(reason string) { m.malformed.WithLabelValues(reason).Inc() }

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
	t := c.srv.sites.Load()
	if t == nil {
		return
	}
	seen := map[string]bool{}
	for _, m := range t.managers {
		for name, exp := range m.Expiries() {
			if !seen[name] {
				seen[name] = true
				ch <- prometheus.MustNewConstMetric(certExpiryDesc, prometheus.GaugeValue, float64(exp.Unix()), name)
			}
		}
	}
}

// pusherCollector exposes pusher.Stats, read once per scrape.
type pusherCollector struct{ srv *server }

var (
	connectionsDesc   = prometheus.NewDesc("frontdoor_connections", "Open WebSocket connections.", []string{"app"}, nil)
	channelsDesc      = prometheus.NewDesc("frontdoor_channels", "Occupied channels.", []string{"app"}, nil)
	subscriptionsDesc = prometheus.NewDesc("frontdoor_subscriptions", "Channel subscriptions across all sockets.", []string{"app"}, nil)
	messagesInDesc    = prometheus.NewDesc("frontdoor_messages_received_total", "WebSocket messages received from clients.", []string{"app"}, nil)
	bytesInDesc       = prometheus.NewDesc("frontdoor_received_bytes_total", "WebSocket message bytes received from clients.", []string{"app"}, nil)
	messagesOutDesc   = prometheus.NewDesc("frontdoor_messages_delivered_total", "Messages delivered to sockets (one per recipient).", []string{"app"}, nil)
	bytesOutDesc      = prometheus.NewDesc("frontdoor_delivered_bytes_total", "Frame bytes queued to sockets.", []string{"app"}, nil)
	clientEventsDesc  = prometheus.NewDesc("frontdoor_client_events_total", "Client events relayed.", []string{"app"}, nil)
	apiEventsDesc     = prometheus.NewDesc("frontdoor_api_events_total", "Events published through the HTTP API.", []string{"app"}, nil)
	apiRequestsDesc   = prometheus.NewDesc("frontdoor_api_requests_total", "HTTP API requests by endpoint and status.", []string{"endpoint", "status"}, nil)
	refusedDesc       = prometheus.NewDesc("frontdoor_refused_total", "Refused inputs (handshakes, frames, API calls) by reason.", []string{"reason"}, nil)
	kickedDesc        = prometheus.NewDesc("frontdoor_kicked_total", "Sockets the server closed on its own account, by reason (slow_consumer, pong_timeout, protocol_errors, message_rate, ...).", []string{"reason"}, nil)
)

func (c *pusherCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{connectionsDesc, channelsDesc, subscriptionsDesc, messagesInDesc, bytesInDesc,
		messagesOutDesc, bytesOutDesc, clientEventsDesc, apiEventsDesc, apiRequestsDesc, refusedDesc, kickedDesc} {
		ch <- d
	}
}

func (c *pusherCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.srv.pusher.Stats()
	for app, a := range st.Apps {
		ch <- prometheus.MustNewConstMetric(connectionsDesc, prometheus.GaugeValue, float64(a.Connections), app)
		ch <- prometheus.MustNewConstMetric(channelsDesc, prometheus.GaugeValue, float64(a.Channels), app)
		ch <- prometheus.MustNewConstMetric(subscriptionsDesc, prometheus.GaugeValue, float64(a.Subscriptions), app)
		ch <- prometheus.MustNewConstMetric(messagesInDesc, prometheus.CounterValue, float64(a.MessagesIn), app)
		ch <- prometheus.MustNewConstMetric(bytesInDesc, prometheus.CounterValue, float64(a.BytesIn), app)
		ch <- prometheus.MustNewConstMetric(messagesOutDesc, prometheus.CounterValue, float64(a.MessagesOut), app)
		ch <- prometheus.MustNewConstMetric(bytesOutDesc, prometheus.CounterValue, float64(a.BytesOut), app)
		ch <- prometheus.MustNewConstMetric(clientEventsDesc, prometheus.CounterValue, float64(a.ClientEvents), app)
		ch <- prometheus.MustNewConstMetric(apiEventsDesc, prometheus.CounterValue, float64(a.APIEvents), app)
	}
	for k, v := range st.APIRequests {
		ch <- prometheus.MustNewConstMetric(apiRequestsDesc, prometheus.CounterValue, float64(v), k.Endpoint, strconv.Itoa(k.Status))
	}
	for reason, v := range st.Refused {
		ch <- prometheus.MustNewConstMetric(refusedDesc, prometheus.CounterValue, float64(v), reason)
	}
	for reason, v := range st.Kicked {
		ch <- prometheus.MustNewConstMetric(kickedDesc, prometheus.CounterValue, float64(v), reason)
	}
}
