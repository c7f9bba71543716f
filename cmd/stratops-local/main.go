// Command stratops-local runs a complete stratops on this machine, with no
// cluster: a local control plane (the envtest kube-apiserver and etcd that
// the tests use, built from source on first use), a redis-server, the
// operator, each Strategy's event logger as a local process (see
// internal/localrun), the samples of config/samples, and the sample engine
// playing the standard's chain against each sample's Redis prefix. It is
// what `make run` starts. Ctrl-C stops everything it started.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/controllers"
	"github.com/stratops/stratops/internal/localrun"
	"github.com/stratops/stratops/internal/redisprobe"
	"github.com/stratops/stratops/internal/redisserver"
	"github.com/stratops/stratops/internal/sampleengine"
	"github.com/stratops/stratops/internal/version"
	"github.com/stratops/stratops/pkg/messaging"
)

// State is what a running stratops-local writes to <dir>/state.json, for
// scripts and tests.
type State struct {
	PID        int            `json:"pid"`
	Kubeconfig string         `json:"kubeconfig"`
	APIServer  string         `json:"apiServer"`
	Redis      string         `json:"redis,omitempty"`
	Loggers    map[string]int `json:"eventLoggerPorts,omitempty"`
	// Metrics is the manager's metrics address (HTTPS, authenticated).
	Metrics string `json:"metrics,omitempty"`
	// Prometheus is the URL of make run's Prometheus, when it runs.
	Prometheus string `json:"prometheus,omitempty"`
}

func say(format string, args ...any) { fmt.Printf("[stratops] "+format+"\n", args...) }

func main() {
	dir := flag.String("dir", "bin/local", "where the kubeconfig, logs and state go")
	root := flag.String("root", ".", "the stratops source tree (for config/ and hack/)")
	table := flag.Duration("table-interval", 5*time.Second, "how often the Strategies table is printed (0: never)")
	printVersion := flag.Bool("version", false, "print the version, the commit and the Go version, and exit")
	flag.Parse()
	if *printVersion {
		fmt.Println(version.String("stratops-local"))
		return
	}
	if err := run(*root, *dir, *table); err != nil {
		fmt.Fprintln(os.Stderr, "stratops-local:", err)
		os.Exit(1)
	}
}

func run(root, dir string, tableEvery time.Duration) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	toggle := make(chan os.Signal, 1)
	signal.Notify(toggle, syscall.SIGUSR1)
	root, _ = filepath.Abs(root)
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(root, dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(mustCreate(filepath.Join(dir, "manager.log")))))
	redisprobe.RouteLogs(ctrl.Log)

	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		say("building kube-apiserver and etcd from source if needed (the first time takes several minutes; later runs reuse them)")
		start := time.Now()
		cmd := exec.CommandContext(ctx, filepath.Join(root, "hack", "build-envtest.sh"))
		cmd.Stderr = prefixWriter{}
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("building the control plane: %w", err)
		}
		assets = strings.TrimSpace(string(out))
		say("control plane binaries ready in %s (%s)", assets, time.Since(start).Round(time.Second))
	}
	say("building the event logger")
	logger := filepath.Join(dir, "eventlogger")
	build := exec.CommandContext(ctx, "go", "build", "-o", logger, "./cmd/eventlogger")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building the event logger: %v\n%s", err, out)
	}

	var redisSrv *redisserver.Server
	if _, err := exec.LookPath("redis-server"); err != nil && os.Geteuid() == 0 {
		say("redis-server not found: installing it with apt-get")
		_ = exec.CommandContext(ctx, filepath.Join(root, "hack", "ensure-redis.sh")).Run()
	}
	redisAddr := "127.0.0.1:1" // nothing listens: Live samples stay Gated
	// Persistent, like a managed Redis: stopping and starting it keeps the
	// data, so the strategies recover as they would in production.
	if s, err := redisserver.Start(redisserver.Options{Persist: true}); err != nil {
		say("no redis-server (%v): Backtest samples run on the in-memory bus, Live samples stay Gated (the standard's rule)", err)
	} else {
		redisSrv = s
		redisAddr = s.Addr
		defer s.Close()
		say("redis-server on %s", s.Addr)
	}

	say("starting the local control plane")
	env := &envtest.Environment{
		CRDDirectoryPaths: []string{filepath.Join(root, "config", "crd", "bases")}, ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}
	cfg, err := env.Start()
	if err != nil {
		return fmt.Errorf("starting the control plane: %w", err)
	}
	defer func() {
		say("stopping the control plane")
		_ = env.Stop()
	}()
	user, err := env.AddUser(envtest.User{Name: "local-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return err
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return err
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		return err
	}
	say("API server %s; kubeconfig %s", cfg.Host, kubeconfig)
	say("use it:  kubectl --kubeconfig %s get strat -A", kubeconfig)

	// The manager's metrics are served as on a cluster: HTTPS, for a
	// token the API server authenticates and allows to get /metrics.
	metricsAddr, err := freeAddr()
	if err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(cfg, controllers.ManagerOptions(ctrl.Options{
		Metrics: metricsserver.Options{BindAddress: metricsAddr, SecureServing: true,
			FilterProvider: filters.WithAuthenticationAndAuthorization},
		HealthProbeBindAddress: "0",
	}))
	if err != nil {
		return err
	}
	if _, err := controllers.Setup(ctx, mgr, controllers.Options{
		// The live table shows traffic as it flows.
		EventLoggerImage: "local", StatusRefreshInterval: 5 * time.Second,
	}); err != nil {
		return err
	}
	mgrCtx, stopMgr := context.WithCancel(context.WithoutCancel(ctx))
	mgrDone := make(chan error, 1)
	go func() { mgrDone <- mgr.Start(mgrCtx) }()
	defer func() {
		stopMgr()
		if err := <-mgrDone; err != nil {
			say("the operator stopped with an error: %v", err)
		}
	}()

	c, err := client.New(cfg, client.Options{Scheme: controllers.Scheme()})
	if err != nil {
		return err
	}
	kubelet := &localrun.Kubelet{Client: c, Binary: logger, Dir: dir, Log: ctrl.Log.WithName("local-kubelet")}
	kubeletCtx, stopKubelet := context.WithCancel(context.WithoutCancel(ctx))
	kubeletDone := make(chan struct{})
	go func() { kubelet.Run(kubeletCtx); close(kubeletDone) }()
	defer func() {
		say("stopping the event loggers")
		stopKubelet()
		<-kubeletDone
	}()
	say("event loggers run as local processes (a local stand-in for the kubelet); their logs are in %s", dir)

	prom, err := startPrometheus(ctx, c, root, dir, metricsAddr)
	if err != nil {
		return err
	}
	defer func() {
		if prom != nil {
			say("stopping Prometheus")
			prom.stop()
		}
	}()
	if prom != nil {
		say("Prometheus on %s (alerts: %s), scraping the operator's metrics on https://%s with the token of ServiceAccount %s/%s (bound to stratops-metrics-reader) and every event logger",
			prom.url, prom.alertsURL, metricsAddr, promNamespace, promServiceAccount)
	}

	samples, err := applySamples(ctx, c, filepath.Join(root, "config", "samples"), redisAddr)
	if err != nil {
		return err
	}
	trafficCtx, stopTraffic := context.WithCancel(ctx)
	defer stopTraffic()
	if redisSrv != nil {
		for _, s := range samples {
			startTraffic(trafficCtx, s, redisAddr)
		}
		say("the sample engine plays position → exposure → risk → P&L and strategy manager for each sample, with a malformed message now and then")
		say("stop Redis to watch the Live sample halt:  kill -USR1 %d   (again to start it)", os.Getpid())
	}
	say("Ctrl-C stops everything")

	writeState := func() {
		st := State{PID: os.Getpid(), Kubeconfig: kubeconfig, APIServer: cfg.Host, Loggers: map[string]int{}, Metrics: metricsAddr}
		if redisSrv != nil {
			st.Redis = redisSrv.Addr
		}
		procs := kubelet.Processes()
		for k, v := range procs {
			st.Loggers[k] = v[1]
		}
		if prom != nil {
			st.Prometheus = prom.url
			if err := prom.writeTargets(procs); err != nil {
				say("writing Prometheus's targets: %v", err)
			}
			if err := prom.refreshToken(ctx, c); err != nil {
				say("renewing Prometheus's token: %v", err)
			}
		}
		b, _ := json.MarshalIndent(st, "", "  ")
		_ = os.WriteFile(filepath.Join(dir, "state.json"), b, 0o644)
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastTable := time.Time{}
	for {
		select {
		case <-ctx.Done():
			say("stopping")
			stopTraffic()
			return nil
		case <-toggle:
			if redisSrv == nil {
				continue
			}
			if redisSrv.Running() {
				say("stopping Redis (kill -USR1 %d to start it again)", os.Getpid())
				_ = redisSrv.Stop()
			} else if err := redisSrv.Restart(); err != nil {
				say("restarting Redis failed: %v", err)
			} else {
				say("Redis is back on %s", redisSrv.Addr)
			}
		case <-tick.C:
			writeState()
			if tableEvery > 0 && time.Since(lastTable) >= tableEvery {
				lastTable = time.Now()
				printTable(ctx, c)
			}
		}
	}
}

// applySamples applies the Strategies of config/samples into the default
// namespace, pointed at the local Redis (which has no password). The
// samples' own Redis (its Deployment, Service and Secret) is for a real
// cluster and is left out.
func applySamples(ctx context.Context, c client.Client, dir, redisAddr string) ([]*stratv1.Strategy, error) {
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	var out []*stratv1.Strategy
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		docs := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
		for {
			doc, err := docs.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			s, err := sampleStrategy(doc, redisAddr)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			if s == nil {
				continue
			}
			if err := c.Create(ctx, s); err != nil {
				return nil, fmt.Errorf("applying %s: %w", f, err)
			}
			say("applied %s: Strategy %s (%s)", filepath.Base(f), s.Name, s.Spec.Mode)
			out = append(out, s)
		}
	}
	return out, nil
}

// sampleStrategy decodes one document of a sample: nil for what is not a
// Strategy.
func sampleStrategy(doc []byte, redisAddr string) (*stratv1.Strategy, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return nil, err
	}
	if tm.Kind != "Strategy" {
		return nil, nil
	}
	s := &stratv1.Strategy{}
	if err := yaml.UnmarshalStrict(doc, s); err != nil {
		return nil, err
	}
	s.Namespace = "default"
	if s.Spec.Redis != nil {
		s.Spec.Redis.Address = redisAddr
		s.Spec.Redis.PasswordSecretRef = nil
	}
	return s, nil
}

func startTraffic(ctx context.Context, s *stratv1.Strategy, addr string) {
	if s.Spec.Redis == nil {
		return
	}
	cfg := messaging.Config{Mode: messaging.Mode(s.Spec.Mode), KeyPrefix: s.Spec.Redis.KeyPrefix,
		Redis: messaging.RedisConfig{Addrs: []string{addr}}}
	go func() {
		for ctx.Err() == nil {
			// Connect fails while Redis is down (Live), and so does Run.
			c, err := messaging.Connect(ctx, cfg, messaging.Options{Log: discard(), ConnectTimeout: time.Second})
			if err == nil {
				err = sampleengine.Run(ctx, c, sampleengine.Options{Interval: time.Second, MalformedEvery: 20, Log: discard()})
				_ = c.Close(context.Background())
			}
			if err == nil {
				return
			}
			select { // Redis down: try again
			case <-ctx.Done():
			case <-time.After(2 * time.Second):
			}
		}
	}()
}

func printTable(ctx context.Context, c client.Client) {
	var list stratv1.StrategyList
	if err := c.List(ctx, &list); err != nil {
		return
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 3, ' ', 0)
	fmt.Fprintf(w, "\nNAMESPACE\tNAME\tMODE\tPHASE\tREDIS\tCHANNELS\tKEYS\tREADY\n")
	for _, s := range list.Items {
		redisReady, ready := "", ""
		if c := meta.FindStatusCondition(s.Status.Conditions, stratv1.ConditionRedisReady); c != nil {
			redisReady = string(c.Status)
		}
		if c := meta.FindStatusCondition(s.Status.Conditions, stratv1.ConditionReady); c != nil {
			ready = string(c.Status) + " " + c.Reason
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Namespace, s.Name, s.Spec.Mode, s.Status.Phase,
			redisReady, s.Status.ChannelsSummary, s.Status.KeysSummary, ready)
	}
	_ = w.Flush()
}

type prefixWriter struct{}

func (prefixWriter) Write(p []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		say("%s", strings.TrimPrefix(l, "[build-envtest] "))
	}
	return len(p), nil
}

func mustCreate(path string) *os.File {
	f, err := os.Create(path)
	if err != nil {
		panic(err)
	}
	return f
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
