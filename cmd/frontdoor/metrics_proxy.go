package main

import "github.com/prometheus/client_golang/prometheus"

var (
	authLaneWaitingDesc = prometheus.NewDesc("frontdoor_auth_lane_waiting",
		"/broadcasting/auth requests waiting for the authorization lane of the php-fpm pools: the reconnect backlog.", nil, nil)
	authLaneActiveDesc = prometheus.NewDesc("frontdoor_auth_lane_active",
		"Authorizations running in PHP now (at most the lane's slots).", nil, nil)
	authLaneRefusedDesc = prometheus.NewDesc("frontdoor_auth_lane_refused_total",
		"Authorizations answered 503 because the lane's queue was full or they waited past auth_queue_timeout.", nil, nil)
	authLaneRateDesc = prometheus.NewDesc("frontdoor_auth_lane_capacity_per_second",
		"Authorizations per second PHP is estimated to answer (lane slots / measured latency); paces shutdown's reconnects.", nil, nil)
)

var previousReleaseAssetsDesc = prometheus.NewDesc("frontdoor_previous_release_assets_served_total",
	"Hashed build assets answered from a previous release after a deploy (tabs opened before it).", nil, nil)

// proxyCollector exposes the proxy's own counters, read once per scrape.
type proxyCollector struct{ srv *server }

func (c *proxyCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- previousReleaseAssetsDesc
	ch <- authLaneWaitingDesc
	ch <- authLaneActiveDesc
	ch <- authLaneRefusedDesc
	ch <- authLaneRateDesc
}

func (c *proxyCollector) Collect(ch chan<- prometheus.Metric) {
	t := c.srv.sites.Load()
	var served uint64
	for _, site := range t.sites {
		served += uint64(site.handler.PreviousReleaseAssetsServed())
	}
	ch <- prometheus.MustNewConstMetric(previousReleaseAssetsDesc, prometheus.CounterValue, float64(served))
	// The lane of the default site's pool: the one the broadcaster's clients authorize through.
	if l := t.def.handler.AuthLane(); l.Slots > 0 {
		ch <- prometheus.MustNewConstMetric(authLaneWaitingDesc, prometheus.GaugeValue, float64(l.Waiting))
		ch <- prometheus.MustNewConstMetric(authLaneActiveDesc, prometheus.GaugeValue, float64(l.Active))
		ch <- prometheus.MustNewConstMetric(authLaneRefusedDesc, prometheus.CounterValue, float64(l.Refused))
		ch <- prometheus.MustNewConstMetric(authLaneRateDesc, prometheus.GaugeValue, l.PerSecond)
	}
}
