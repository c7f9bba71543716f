package eventlogger

import (
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/stratops/stratops/internal/eventlog"
	"github.com/stratops/stratops/pkg/messaging"
)

// metrics are the event logger's Prometheus metrics, on its own registry.
type metrics struct {
	registry       *prometheus.Registry
	messages       *prometheus.CounterVec
	invalid        *prometheus.CounterVec
	pending        prometheus.Gauge
	overflow       prometheus.Counter
	writeErrors    prometheus.Counter
	statsErrors    prometheus.Counter
	busUp          prometheus.Gauge
	inMemory       prometheus.Gauge
	nonconforming  *prometheus.CounterVec
	lag            *prometheus.HistogramVec
	recordDuration prometheus.Histogram
	apiRefused     *prometheus.CounterVec
	dropped        *prometheus.CounterVec
	gaps           *prometheus.CounterVec
	gapSeconds     prometheus.Counter
	notifyLost     prometheus.Counter
	writeFailing   *prometheus.GaugeVec
	spoolBytes     prometheus.Gauge
	spoolCapacity  prometheus.Gauge
	leader         prometheus.Gauge
	takeovers      prometheus.Counter
	recovered      prometheus.Counter
	handedOver     prometheus.Counter
}

func newMetrics() *metrics {
	const ns, sub = "stratops", "eventlogger"
	m := &metrics{
		registry: prometheus.NewRegistry(),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "messages_total", Help: "Valid messages logged, by channel."}, []string{"channel"}),
		invalid: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "invalid_messages_total", Help: "Messages skipped as invalid, by channel and reason."}, []string{"channel", "reason"}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "pending_events", Help: "Logged events waiting to be written to the bus (grows while Redis is down)."}),
		overflow: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "queue_overflow_total", Help: "Events refused because the spool (or, without one, the pending queue) was full."}),
		writeErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "write_errors_total", Help: "Failed attempts to write events to the bus (retried)."}),
		statsErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "stats_write_errors_total", Help: "Failed attempts to write the channel stats hash (retried)."}),
		busUp: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "bus_up", Help: "1 when the bus answered its last ping."}),
		inMemory: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "in_memory_fallback", Help: "1 when a backtest runs on the in-memory bus because Redis was unreachable."}),
		nonconforming: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "nonconforming_messages_total", Help: "Messages logged without a usable timestamp (stamped with the receive time), by channel and reason."}, []string{"channel", "reason"}),
		lag: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "event_lag_seconds", Help: "From an event's timestamp to the event logger receiving it, by channel: how late each hop of the chain is.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"channel"}),
		recordDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "record_duration_seconds", Help: "Time to write one batch of events to the bus.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
		apiRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "api_requests_refused_total", Help: "API requests refused before they were served, by reason (unauthorized, too_many_requests)."}, []string{"reason"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "dropped_messages_total", Help: "Published messages written to the output but not kept for the history (the spool or queue was full), by channel."}, []string{"channel"}),
		gaps: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "subscription_gaps_total", Help: "Times the subscription was down (messages published meanwhile may be lost), by channel."}, []string{"channel"}),
		gapSeconds: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "subscription_gap_seconds_total", Help: "Seconds the subscription was down."}),
		notifyLost: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "notifications_lost_total", Help: "events:logged notifications not published for events whose history was written (never retried, so never sent twice)."}),
		writeFailing: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "write_failing", Help: "1 while Redis refuses the history's writes for good, by reason (RedisPermissionDenied, RedisWrongType, RedisOutOfMemory, RedisReadOnly)."}, []string{"reason"}),
		spoolBytes: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "spool_bytes", Help: "Bytes of the spool in use."}),
		spoolCapacity: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "spool_capacity_bytes", Help: "The spool's room; 0 without a spool."}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "leader", Help: "1 while this replica holds the lease and records the channels' messages."}),
		takeovers: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "takeovers_total", Help: "Times this replica took the lease."}),
		recovered: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "takeover_recovered_total", Help: "Messages this replica heard as a standby, which the former leader had not written, logged when it took over."}),
		handedOver: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "handed_over_total", Help: "Channel events this replica accepted but left to the replica that took the lease (which heard them too)."}),
	}
	m.registry.MustRegister(m.leader, m.takeovers, m.recovered, m.handedOver, m.messages, m.invalid, m.pending, m.overflow, m.writeErrors, m.statsErrors,
		m.busUp, m.inMemory, m.nonconforming, m.lag, m.recordDuration, m.apiRefused,
		m.dropped, m.gaps, m.gapSeconds, m.notifyLost, m.writeFailing, m.spoolBytes, m.spoolCapacity,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, reason := range writeFailingReasons {
		m.writeFailing.WithLabelValues(reason)
	}
	for _, reason := range []string{"unauthorized", "too_many_requests"} {
		m.apiRefused.WithLabelValues(reason)
	}
	return m
}

// writeFailingReasons are the permanent write failures write_failing has
// a series for.
var writeFailingReasons = []string{eventlog.WriteRedisPermissionDenied, eventlog.WriteRedisWrongType,
	eventlog.WriteRedisOutOfMemory, eventlog.WriteRedisReadOnly}

// initChannels gives every channel's counters a series at 0 from the
// start, so that the first message dropped, the first gap or the first
// nonconforming message is an increase an alert's rate() or increase()
// sees, not the first sample of a new series, which it cannot.
func (m *metrics) initChannels(channels []string) {
	for _, c := range channels {
		m.messages.WithLabelValues(c)
		m.dropped.WithLabelValues(c)
		m.gaps.WithLabelValues(c)
		for _, reason := range []string{messaging.ReasonMissingTimestamp, messaging.ReasonBadTimestamp} {
			m.nonconforming.WithLabelValues(c, reason)
		}
	}
}

// setWriteFailing sets write_failing to 1 for reason and 0 for the
// others ("": none).
func (m *metrics) setWriteFailing(reason string) {
	for _, r := range writeFailingReasons {
		v := 0.0
		if r == reason {
			v = 1
		}
		m.writeFailing.WithLabelValues(r).Set(v)
	}
	if reason != "" && !slices.Contains(writeFailingReasons, reason) {
		m.writeFailing.WithLabelValues(reason).Set(1)
	}
}
