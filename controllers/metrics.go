package controllers

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

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
)

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func init() {
	metrics.Registry.MustRegister(buildInfo)
	metrics.Registry.MustRegister(probeLatency, probeFailures, redisClientsOpen, checksInFlight, statusMetrics, healthMetrics)
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
