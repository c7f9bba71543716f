package controllers

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	stratv1 "github.com/stratops/stratops/api/v1"
)

// What a Strategy's status says, for alerts and dashboards: one series per
// phase (1 for the current one, 0 for the others, as kube-state-metrics
// does for pods), one per condition carrying its status and reason, and
// one per channel, key and probe. They are made at scrape time from the
// Strategies the manager's cache holds, as kube-state-metrics makes its
// own: nothing is kept per Strategy between scrapes (at a thousand
// Strategies, a hundred thousand series held in gauge vectors were the
// largest part of the manager's heap after its caches), a scrape sees each
// Strategy's status whole, and a deleted Strategy's series go with it.
var (
	strategyPhaseDesc = prometheus.NewDesc("stratops_strategy_phase",
		"1 for the phase each Strategy is in (status.phase), 0 for the others.",
		[]string{"namespace", "strategy", "mode", "phase"}, nil)
	strategyConditionDesc = prometheus.NewDesc("stratops_strategy_condition",
		"Each condition of each Strategy: one series, labelled with the condition's status and reason, whose value is 1.",
		[]string{"namespace", "strategy", "type", "status", "reason"}, nil)
	strategyConditionSinceDesc = prometheus.NewDesc("stratops_strategy_condition_last_transition_timestamp_seconds",
		"When each condition of each Strategy last changed status (Unix time).",
		[]string{"namespace", "strategy", "type"}, nil)
	redisFailingSinceDesc = prometheus.NewDesc("stratops_redis_failing_since_timestamp_seconds",
		"When a Strategy's Redis probe rounds started failing (status.redis.failingSince, Unix time); absent while they pass.",
		[]string{"namespace", "strategy"}, nil)
	probeOKDesc = prometheus.NewDesc("stratops_redis_probe_ok",
		"1 when a Strategy's Redis probe passed in the last round, 0 when it failed (status.redis.probes).",
		[]string{"namespace", "strategy", "probe"}, nil)
	channelHealthyDesc = prometheus.NewDesc("stratops_channel_healthy",
		"1 when a channel of a Strategy meets its policy, 0 when not (reason says why; status.channels).",
		[]string{"namespace", "strategy", "channel", "reason"}, nil)
	keyHealthyDesc = prometheus.NewDesc("stratops_key_healthy",
		"1 when a key of a Strategy meets its TTL policy, 0 when not (reason says why; status.keys).",
		[]string{"namespace", "strategy", "key", "reason"}, nil)
	keyPolicyTTLDesc = prometheus.NewDesc("stratops_key_policy_ttl_seconds",
		"The TTL the standard sets for each key of each Strategy (absent for keys with none).",
		[]string{"namespace", "strategy", "key"}, nil)
)

// allPhases are the phases stratops_strategy_phase has a series for.
var allPhases = []stratv1.StrategyPhase{stratv1.PhasePending, stratv1.PhaseGated, stratv1.PhaseRunning, stratv1.PhaseDegraded,
	stratv1.PhaseHalted, stratv1.PhaseSuspended, stratv1.PhaseSucceeded, stratv1.PhaseFailed}

// statusMetrics is the collector of the status series, registered once on
// controller-runtime's registry; a manager's Setup points it at its cache
// while that manager leads (watchStatusMetrics).
var statusMetrics = &statusCollector{}

// statusCollector makes the status series from the Strategies a reader
// holds. Only the leading manager's reader is used: the status series are
// the leader's, as they were when the reconciler wrote them, so that two
// replicas scraped together do not say everything twice.
type statusCollector struct {
	// leading are the leading managers' caches.
	leading[client.Reader]
}

// leading is what a collector reads from the leading manager: the latest
// of those in use (one in a process, but for tests that start another
// manager before the last is gone).
type leading[T comparable] struct {
	mu    sync.Mutex
	inUse []T
}

// use makes the collector read v until the returned function is called.
func (l *leading[T]) use(v T) (release func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inUse = append(l.inUse, v)
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if i := slices.Index(l.inUse, v); i >= 0 {
			l.inUse = slices.Delete(l.inUse, i, i+1)
		}
	}
}

// current is the latest in use; ok is false when none is.
func (l *leading[T]) current() (v T, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.inUse) == 0 {
		return v, false
	}
	return l.inUse[len(l.inUse)-1], true
}

// Describe implements prometheus.Collector.
func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{strategyPhaseDesc, strategyConditionDesc, strategyConditionSinceDesc, redisFailingSinceDesc,
		probeOKDesc, channelHealthyDesc, keyHealthyDesc, keyPolicyTTLDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: the series of every Strategy
// in the leading manager's cache. A cache that cannot answer within the
// scrape's time gives none, and the scrape goes on with the other series.
func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	r, ok := c.current()
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var list stratv1.StrategyList
	// The cache's own objects: read here, never changed.
	if err := r.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return
	}
	for i := range list.Items {
		collectStatus(ch, &list.Items[i])
	}
}

// collectStatus sends the status series of one Strategy.
func collectStatus(ch chan<- prometheus.Metric, s *stratv1.Strategy) {
	ns, name := s.Namespace, s.Name
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, p := range allPhases {
		gauge(strategyPhaseDesc, boolValue(s.Status.Phase == p), ns, name, string(s.Spec.Mode), string(p))
	}
	for _, c := range s.Status.Conditions {
		gauge(strategyConditionDesc, 1, ns, name, c.Type, string(c.Status), c.Reason)
		gauge(strategyConditionSinceDesc, float64(c.LastTransitionTime.Unix()), ns, name, c.Type)
	}
	if r := s.Status.Redis; r != nil {
		if r.FailingSince != nil {
			gauge(redisFailingSinceDesc, float64(r.FailingSince.Unix()), ns, name)
		}
		for _, p := range r.Probes {
			gauge(probeOKDesc, boolValue(p.OK), ns, name, p.Name)
		}
	}
	for _, c := range s.Status.Channels {
		gauge(channelHealthyDesc, boolValue(c.Healthy), ns, name, c.Name, c.Reason)
	}
	for _, k := range s.Status.Keys {
		gauge(keyHealthyDesc, boolValue(k.Healthy), ns, name, k.Name, k.Reason)
		if k.PolicyTTLSeconds != nil {
			gauge(keyPolicyTTLDesc, float64(*k.PolicyTTLSeconds), ns, name, k.Name)
		}
	}
}

// watchStatusMetrics points the status series at mgr's cache, and the
// health series at r's checks, while mgr leads: a runnable that needs
// leader election starts only once elected.
func watchStatusMetrics(mgr manager.Manager, r *StrategyReconciler) error {
	return mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		releaseStatus := statusMetrics.use(mgr.GetCache())
		defer releaseStatus()
		releaseHealth := healthMetrics.use(r.redisChecks())
		defer releaseHealth()
		<-ctx.Done()
		return nil
	}))
}
