package controllers

import (
	"reflect"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/redisprobe"
)

// Manager metrics, on controller-runtime's registry (the manager's
// /metrics endpoint).
var (
	probeLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "stratops_redis_probe_duration_seconds", Help: "Latency of each Redis readiness probe.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	}, []string{"probe"})
	probeFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stratops_redis_probe_failures_total", Help: "Failed Redis readiness probes, by probe and reason.",
	}, []string{"probe", "reason"})
	redisClientsOpen = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "stratops_redis_clients_open", Help: "Redis clients the operator holds open (one per distinct connection setting).",
	})
	checksInFlight = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "stratops_redis_checks_in_flight", Help: "Redis checks (probe rounds, health read-outs) running off the reconcile workers.",
	})
	channelSubscribers = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "stratops_channel_subscribers", Help: "PUBSUB NUMSUB of each channel of each Strategy.",
	}, []string{"namespace", "strategy", "channel"})
	channelLagP99 = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "stratops_channel_lag_p99_seconds", Help: "p99 lag of each channel over the event logger's health window (from an event's timestamp to the logger receiving it).",
	}, []string{"namespace", "strategy", "channel"})
	channelLastMessage = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "stratops_channel_last_message_timestamp_seconds", Help: "When the event logger last logged a message of each channel (Unix time).",
	}, []string{"namespace", "strategy", "channel"})
	keyTTL = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "stratops_key_ttl_seconds", Help: "Remaining TTL of each key of each Strategy (-1: none, -2: missing).",
	}, []string{"namespace", "strategy", "key"})
	healthyCount = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "stratops_healthy", Help: "Healthy channels or keys of each Strategy.",
	}, []string{"namespace", "strategy", "kind"})
	totalCount = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "stratops_total", Help: "Channels or keys of each Strategy.",
	}, []string{"namespace", "strategy", "kind"})

	// What a Strategy's status says, for alerts and dashboards: one series
	// per phase (1 for the current one, 0 for the others, as
	// kube-state-metrics does for pods), one per condition carrying its
	// status and reason, and one per channel, key and probe.
	strategyPhase = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "stratops_strategy_phase", Help: "1 for the phase each Strategy is in (status.phase), 0 for the others.",
	}, []string{"namespace", "strategy", "mode", "phase"})
	strategyCondition = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "stratops_strategy_condition", Help: "Each condition of each Strategy: one series, labelled with the condition's status and reason, whose value is 1.",
	}, []string{"namespace", "strategy", "type", "status", "reason"})
	strategyConditionSince = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "stratops_strategy_condition_last_transition_timestamp_seconds", Help: "When each condition of each Strategy last changed status (Unix time).",
	}, []string{"namespace", "strategy", "type"})
	redisFailingSince = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "stratops_redis_failing_since_timestamp_seconds", Help: "When a Strategy's Redis probe rounds started failing (status.redis.failingSince, Unix time); absent while they pass.",
	}, []string{"namespace", "strategy"})
	probeOK = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "stratops_redis_probe_ok", Help: "1 when a Strategy's Redis probe passed in the last round, 0 when it failed (status.redis.probes).",
	}, []string{"namespace", "strategy", "probe"})
	channelHealthy = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "stratops_channel_healthy", Help: "1 when a channel of a Strategy meets its policy, 0 when not (reason says why; status.channels).",
	}, []string{"namespace", "strategy", "channel", "reason"})
	keyHealthy = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "stratops_key_healthy", Help: "1 when a key of a Strategy meets its TTL policy, 0 when not (reason says why; status.keys).",
	}, []string{"namespace", "strategy", "key", "reason"})
	keyPolicyTTL = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "stratops_key_policy_ttl_seconds", Help: "The TTL the standard sets for each key of each Strategy (absent for keys with none).",
	}, []string{"namespace", "strategy", "key"})
)

// statusVecs are the series exportStatus derives from a status.
var statusVecs = []*prometheus.GaugeVec{strategyPhase, strategyCondition, strategyConditionSince, redisFailingSince, probeOK,
	channelHealthy, keyHealthy, keyPolicyTTL}

// allPhases are the phases stratops_strategy_phase has a series for.
var allPhases = []stratv1.StrategyPhase{stratv1.PhasePending, stratv1.PhaseGated, stratv1.PhaseRunning, stratv1.PhaseDegraded,
	stratv1.PhaseHalted, stratv1.PhaseSuspended, stratv1.PhaseSucceeded, stratv1.PhaseFailed}

// statusSeries remembers which status series were last written for each
// Strategy, so that exportStatus deletes only those the status no longer
// has: deleting all and writing them again would let a scrape in between
// see none, and an alert's `for` start over.
var statusSeries = struct {
	sync.Mutex
	written map[string][]series
	from    map[string]exportedFrom
}{written: map[string][]series{}, from: map[string]exportedFrom{}}

type series struct {
	vec    *prometheus.GaugeVec
	values []string
}

func (a series) same(b series) bool { return a.vec == b.vec && slices.Equal(a.values, b.values) }

// exportedFrom is the mode and status a Strategy's series were last
// written from: an unchanged status (most reconciles) writes none again.
type exportedFrom struct {
	mode   stratv1.StrategyMode
	status *stratv1.StrategyStatus
}

// exportStatus puts what a Strategy's status says into the status series.
func exportStatus(s *stratv1.Strategy) {
	ns, name := s.Namespace, s.Name
	key := ns + "/" + name
	statusSeries.Lock()
	defer statusSeries.Unlock()
	if e, ok := statusSeries.from[key]; ok && e.mode == s.Spec.Mode && reflect.DeepEqual(e.status, &s.Status) {
		return
	}
	var now []series
	set := func(v *prometheus.GaugeVec, value float64, values ...string) {
		v.WithLabelValues(values...).Set(value)
		now = append(now, series{v, values})
	}
	for _, p := range allPhases {
		set(strategyPhase, boolValue(s.Status.Phase == p), ns, name, string(s.Spec.Mode), string(p))
	}
	for _, c := range s.Status.Conditions {
		set(strategyCondition, 1, ns, name, c.Type, string(c.Status), c.Reason)
		set(strategyConditionSince, float64(c.LastTransitionTime.Unix()), ns, name, c.Type)
	}
	if r := s.Status.Redis; r != nil {
		if r.FailingSince != nil {
			set(redisFailingSince, float64(r.FailingSince.Unix()), ns, name)
		}
		for _, p := range r.Probes {
			set(probeOK, boolValue(p.OK), ns, name, p.Name)
		}
	}
	for _, c := range s.Status.Channels {
		set(channelHealthy, boolValue(c.Healthy), ns, name, c.Name, c.Reason)
	}
	for _, k := range s.Status.Keys {
		set(keyHealthy, boolValue(k.Healthy), ns, name, k.Name, k.Reason)
		if k.PolicyTTLSeconds != nil {
			set(keyPolicyTTL, float64(*k.PolicyTTLSeconds), ns, name, k.Name)
		}
	}
	for _, old := range statusSeries.written[key] {
		if !slices.ContainsFunc(now, old.same) {
			old.vec.DeleteLabelValues(old.values...)
		}
	}
	statusSeries.written[key] = now
	statusSeries.from[key] = exportedFrom{mode: s.Spec.Mode, status: s.Status.DeepCopy()}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func init() {
	metrics.Registry.MustRegister(buildInfo)
	metrics.Registry.MustRegister(probeLatency, probeFailures, redisClientsOpen, checksInFlight, channelSubscribers, channelLagP99, channelLastMessage,
		keyTTL, healthyCount, totalCount)
	for _, v := range statusVecs {
		metrics.Registry.MustRegister(v)
	}
}

// forgetMetrics drops a deleted Strategy's series.
func forgetMetrics(namespace, name string) {
	l := prometheus.Labels{"namespace": namespace, "strategy": name}
	channelSubscribers.DeletePartialMatch(l)
	channelLagP99.DeletePartialMatch(l)
	channelLastMessage.DeletePartialMatch(l)
	keyTTL.DeletePartialMatch(l)
	healthyCount.DeletePartialMatch(l)
	totalCount.DeletePartialMatch(l)
	statusSeries.Lock()
	delete(statusSeries.written, namespace+"/"+name)
	delete(statusSeries.from, namespace+"/"+name)
	for _, v := range statusVecs {
		v.DeletePartialMatch(l)
	}
	statusSeries.Unlock()
}

// NewRedisClients is the Redis client cache, reporting how many clients
// are open in stratops_redis_clients_open.
func NewRedisClients() *redisprobe.Clients {
	c := redisprobe.NewClients()
	c.OnChange = func(open int) { redisClientsOpen.Set(float64(open)) }
	return c
}

// buildInfo says which build of the operator runs: always 1, labelled.
var buildInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "stratops_build_info",
	Help: "The operator's build: 1, labelled with its version, commit and Go version.",
}, []string{"version", "revision", "goversion"})

// ExportBuildInfo sets stratops_build_info for this process.
func ExportBuildInfo(version, revision, goVersion string) {
	buildInfo.WithLabelValues(version, revision, goVersion).Set(1)
}
