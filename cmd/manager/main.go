// Command manager runs the stratops operator: the Strategy controller, its
// metrics and health endpoints, with optional leader election.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/stratops/stratops/controllers"
	"github.com/stratops/stratops/internal/children"
	"github.com/stratops/stratops/internal/redisprobe"
	"github.com/stratops/stratops/internal/version"
)

// defaultImage is the operator's own image, used for event loggers whose
// Strategy names none. Set at build time with -ldflags "-X main.defaultImage=...".
var defaultImage = "stratops:dev"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "check" {
		if err := runCheck(os.Args[2:], os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		metricsAddr, probeAddr, image string
		leaderElect                   bool
		leaderElectionNamespace       string
		workers                       int
		statusRefresh                 time.Duration
		allowedRedis                  string
		metricsCIDRs, metricsNSLabel  string
		revisionKeyNamespace          string
		printVersion                  bool
		metricsCertPath               string
		metricsCertName               string
		metricsCertKey                string
		memoryLimitRatio              float64
	)
	flag.BoolVar(&printVersion, "version", false, "Print the version, the commit and the Go version, and exit.")
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8443", "Address of the Prometheus metrics endpoint (HTTPS; clients need a token allowed to get /metrics); 0 disables it.")
	flag.StringVar(&metricsCertPath, "metrics-cert-path", "",
		"Directory of the metrics endpoint's serving certificate and key (a cert-manager Certificate's Secret, mounted); reloaded when they change. Empty: a self-signed certificate made at start.")
	flag.StringVar(&metricsCertName, "metrics-cert-name", "tls.crt", "The certificate's file name in --metrics-cert-path.")
	flag.StringVar(&metricsCertKey, "metrics-cert-key", "tls.key", "The key's file name in --metrics-cert-path.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz endpoints.")
	flag.BoolVar(&leaderElect, "leader-elect", false, "Elect a leader, so that only one replica reconciles at a time.")
	flag.StringVar(&leaderElectionNamespace, "leader-election-namespace", "", "Namespace of the leader election Lease; default: the pod's namespace.")
	flag.StringVar(&image, "eventlogger-image", envOr("STRATOPS_EVENTLOGGER_IMAGE", defaultImage), "Event logger image for Strategies that name none (default: the operator's own image).")
	flag.IntVar(&workers, "max-concurrent-reconciles", 4, "How many Strategies are reconciled in parallel.")
	flag.DurationVar(&statusRefresh, "status-refresh-interval", controllers.DefaultStatusRefreshInterval,
		"How often figures alone (message counts, lags, last message and probe times, TTLs) are written to a Strategy's status; a change of meaning is written at once, and metrics are always current.")
	flag.StringVar(&allowedRedis, "allowed-redis-addresses", "",
		"Comma-separated host globs and CIDRs of the Redis servers the operator may connect to for a Strategy (its probes send the Strategy's credentials there); a Strategy pointed elsewhere is Stalled, AddressNotAllowed. Empty: any.")
	flag.StringVar(&metricsCIDRs, "eventlogger-metrics-cidrs", "",
		"Comma-separated CIDRs (the nodes') that may reach the event loggers' health and metrics port under their NetworkPolicies: kubelet probes come from there. With this and --eventlogger-metrics-namespace-label empty, that port is open to all.")
	flag.StringVar(&metricsNSLabel, "eventlogger-metrics-namespace-label", "",
		"key=value: pods of the namespaces with this label (Prometheus) may reach the event loggers' health and metrics port.")
	flag.StringVar(&revisionKeyNamespace, "revision-key-namespace", envOr("POD_NAMESPACE", "default"),
		"Namespace of the Secret "+controllers.RevisionKeySecret+", the key of the HMACs by which revisions cover Secret values (made once): the manager's own.")
	flag.Float64Var(&memoryLimitRatio, "memory-limit-ratio", 0.9,
		"The Go runtime's soft memory limit as a fraction of the container's memory limit (its cgroup's), so that garbage is collected before the container is killed out of memory; 0, or GOMEMLIMIT set, leaves it alone.")
	opts := zap.Options{Development: false}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	if printVersion {
		fmt.Println(version.String("manager"))
		return nil
	}

	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	log := ctrl.Log.WithName("setup")
	log.Info("Starting stratops", "version", version.Version, "commit", version.Commit(), "go", version.GoVersion())
	controllers.ExportBuildInfo(version.Version, version.Commit(), version.GoVersion())
	redisprobe.RouteLogs(ctrl.Log)
	if limit, err := setMemoryLimit("/sys/fs/cgroup", memoryLimitRatio); err != nil {
		return err
	} else if limit > 0 {
		log.Info("The Go runtime's soft memory limit follows the container's", "bytes", limit, "ratio", memoryLimitRatio)
	}

	allowed, err := redisprobe.ParseAddressPolicy(strings.Split(allowedRedis, ","))
	if err != nil {
		return fmt.Errorf("--allowed-redis-addresses: %w", err)
	}

	np, err := networkPolicyOptions(metricsCIDRs, metricsNSLabel)
	if err != nil {
		return err
	}

	// HTTPS, and only for clients whose token the API server vouches for
	// and who may get /metrics: metric labels name every tenant's
	// Strategies. The certificate is the one given (watched: a renewed
	// one is served without a restart), or self-signed.
	metricsOpts := metricsserver.Options{
		BindAddress: metricsAddr, SecureServing: true,
		FilterProvider: filters.WithAuthenticationAndAuthorization,
	}
	var certWatcher *certwatcher.CertWatcher
	if metricsCertPath != "" {
		if certWatcher, err = certwatcher.New(filepath.Join(metricsCertPath, metricsCertName), filepath.Join(metricsCertPath, metricsCertKey)); err != nil {
			return fmt.Errorf("--metrics-cert-path: %w", err)
		}
		metricsOpts.TLSOpts = append(metricsOpts.TLSOpts, func(c *tls.Config) { c.GetCertificate = certWatcher.GetCertificate })
	}
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), controllers.ManagerOptions(ctrl.Options{
		Metrics:                 metricsOpts,
		HealthProbeBindAddress:  probeAddr,
		LeaderElection:          leaderElect,
		LeaderElectionID:        "stratops.stratops.dev",
		LeaderElectionNamespace: leaderElectionNamespace,
		// The Lease is released on shutdown so a new leader takes over at
		// once instead of after the lease expires.
		LeaderElectionReleaseOnCancel: true,
	}))
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	if certWatcher != nil {
		if err := mgr.Add(certWatcher); err != nil {
			return fmt.Errorf("watching the metrics certificate: %w", err)
		}
	}

	ctx := ctrl.SetupSignalHandler()
	if _, err := controllers.Setup(ctx, mgr, controllers.Options{
		EventLoggerImage: image, MaxConcurrentReconciles: workers, StatusRefreshInterval: statusRefresh,
		AllowedRedisAddresses: allowed, NetworkPolicy: np, RevisionKeyNamespace: revisionKeyNamespace,
	}); err != nil {
		return fmt.Errorf("setting up the Strategy controller: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	log.Info("Starting manager", "eventLoggerImage", image, "leaderElection", leaderElect, "allowedRedisAddresses", allowed.String())
	return mgr.Start(ctx)
}

// networkPolicyOptions reads the loggers' NetworkPolicy flags.
func networkPolicyOptions(cidrs, nsLabel string) (children.NetworkPolicyOptions, error) {
	var o children.NetworkPolicyOptions
	for _, c := range strings.Split(cidrs, ",") {
		if c = strings.TrimSpace(c); c == "" {
			continue
		}
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return o, fmt.Errorf("--eventlogger-metrics-cidrs: %q is not a CIDR: %w", c, err)
		}
		o.MetricsCIDRs = append(o.MetricsCIDRs, p.Masked().String())
	}
	if nsLabel = strings.TrimSpace(nsLabel); nsLabel != "" {
		k, v, ok := strings.Cut(nsLabel, "=")
		if !ok || k == "" {
			return o, fmt.Errorf("--eventlogger-metrics-namespace-label: %q is not key=value", nsLabel)
		}
		o.MetricsNamespaceLabels = map[string]string{k: v}
	}
	return o, nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
