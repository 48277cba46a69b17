package main

import "github.com/prometheus/client_golang/prometheus"

var previousReleaseAssetsDesc = prometheus.NewDesc("frontdoor_previous_release_assets_served_total",
	"Hashed build assets answered from a previous release after a deploy (tabs opened before it).", nil, nil)

// proxyCollector exposes the proxy's own counters, read once per scrape.
type proxyCollector struct{ srv *server }

func (c *proxyCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- previousReleaseAssetsDesc
}

func (c *proxyCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(previousReleaseAssetsDesc, prometheus.CounterValue, float64(c.srv.proxy.PreviousReleaseAssetsServed()))
}
