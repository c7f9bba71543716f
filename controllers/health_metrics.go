package controllers

import (
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"

	"github.com/stratops/stratops/internal/redisprobe"
)

// The health series: what each Strategy's last health read-out found of
// its channels and keys. They are made at scrape time from the read-outs
// the leading manager's Redis checks hold (which it keeps anyway), rather
// than copied into gauge vectors at every reconcile: at a thousand
// Strategies those held as much again as the read-outs themselves. A
// Strategy's series go with its checks when it is deleted; while Redis is
// lost they say the last read-out, as status does.
var (
	channelSubscribersDesc = prometheus.NewDesc("stratops_channel_subscribers",
		"PUBSUB NUMSUB of each channel of each Strategy.", []string{"namespace", "strategy", "channel"}, nil)
	channelLagP99Desc = prometheus.NewDesc("stratops_channel_lag_p99_seconds",
		"p99 lag of each channel over the event logger's health window (from an event's timestamp to the logger receiving it).",
		[]string{"namespace", "strategy", "channel"}, nil)
	channelLastMessageDesc = prometheus.NewDesc("stratops_channel_last_message_timestamp_seconds",
		"When the event logger last logged a message of each channel (Unix time).", []string{"namespace", "strategy", "channel"}, nil)
	keyTTLDesc = prometheus.NewDesc("stratops_key_ttl_seconds",
		"Remaining TTL of each key of each Strategy (-1: none, -2: missing).", []string{"namespace", "strategy", "key"}, nil)
	healthyCountDesc = prometheus.NewDesc("stratops_healthy",
		"Healthy channels or keys of each Strategy.", []string{"namespace", "strategy", "kind"}, nil)
	totalCountDesc = prometheus.NewDesc("stratops_total",
		"Channels or keys of each Strategy.", []string{"namespace", "strategy", "kind"}, nil)
)

// healthMetrics is the collector of the health series, registered once on
// controller-runtime's registry; a manager's Setup points it at its
// reconciler's checks while that manager leads (watchStatusMetrics).
var healthMetrics = &healthCollector{}

// healthCollector makes the health series from the leading manager's
// Redis checks.
type healthCollector struct {
	leading[*redisChecks]
}

// Describe implements prometheus.Collector.
func (c *healthCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{channelSubscribersDesc, channelLagP99Desc, channelLastMessageDesc, keyTTLDesc, healthyCountDesc, totalCountDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *healthCollector) Collect(ch chan<- prometheus.Metric) {
	rc, ok := c.current()
	if !ok {
		return
	}
	rc.lastHealth(func(nn types.NamespacedName, h *redisprobe.Health) { collectHealth(ch, nn, h) })
}

// collectHealth sends the health series of one Strategy's read-out.
func collectHealth(ch chan<- prometheus.Metric, nn types.NamespacedName, h *redisprobe.Health) {
	ns, name := nn.Namespace, nn.Name
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	healthy := 0
	for _, c := range h.Channels {
		gauge(channelSubscribersDesc, float64(c.Subscribers), ns, name, c.Name)
		if !c.LastMessageTime.IsZero() {
			gauge(channelLastMessageDesc, float64(c.LastMessageTime.UnixMilli())/1000, ns, name, c.Name)
		}
		if c.WindowOK && c.Window.LagSamples > 0 {
			gauge(channelLagP99Desc, c.Window.LagP99.Seconds(), ns, name, c.Name)
		}
		if c.Healthy {
			healthy++
		}
	}
	gauge(healthyCountDesc, float64(healthy), ns, name, "channels")
	gauge(totalCountDesc, float64(len(h.Channels)), ns, name, "channels")
	healthy = 0
	for _, k := range h.Keys {
		gauge(keyTTLDesc, float64(keyTTLSeconds(k)), ns, name, k.Name)
		if k.Healthy {
			healthy++
		}
	}
	gauge(healthyCountDesc, float64(healthy), ns, name, "keys")
	gauge(totalCountDesc, float64(len(h.Keys)), ns, name, "keys")
}
