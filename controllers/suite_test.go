package controllers

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap/zapcore"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/redisprobe"
	"github.com/stratops/stratops/internal/redisserver"
	"github.com/stratops/stratops/pkg/messaging"
)

const (
	// timeout bounds every Eventually: generous, since two cores run the
	// API server, Redis and several test packages at once.
	timeout = 60 * time.Second
	// testStatusRefresh bounds how often figures alone are written to
	// status in the tests: long enough to see that an idle Strategy costs
	// no write over several probe rounds, short enough for tests that read
	// counters from status.
	testStatusRefresh = 10 * time.Second
	interval          = 100 * time.Millisecond
	testImage         = "stratops:test"
)

var (
	k8sClient  client.Client
	testScheme = Scheme()
	restConfig *rest.Config
	reconciler *StrategyReconciler
	// managerCache is what the manager keeps in memory.
	managerCache cache.Cache
	// redisOpen needs no password; redisAuth needs testPassword (default
	// user, ACL user "trader", and "reader" who may not SET).
	redisOpen, redisAuth *redisserver.Server
)

const testPassword = "s3cret-pass"

// TestMain starts one real kube-apiserver and etcd (envtest, binaries built
// from source by hack/build-envtest.sh) and the manager with the Strategy
// controller, for every test of the package.
func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		fmt.Fprintln(os.Stderr, "KUBEBUILDER_ASSETS is not set: run the tests with `make test`, which builds kube-apiserver and etcd into bin/")
		return 1
	}
	// Every log line of the manager, at every level, is kept to check that
	// no secret is ever logged; errors also go to stderr.
	ctrl.SetLogger(zap.New(zap.WriteTo(io.MultiWriter(managerLogs, levelFilter{os.Stderr})), zap.UseDevMode(false), zap.Level(zapcore.Level(-10))))
	redisprobe.RouteLogs(ctrl.Log)

	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	var err error
	if restConfig, err = env.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "starting envtest:", err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping envtest:", err)
		}
	}()

	// The manager's own requests are counted at its client (see
	// managerRequests), for the cost budgets.
	managerConfig := rest.CopyConfig(restConfig)
	managerConfig.Wrap(managerRequests.Wrap)
	mgr, err := ctrl.NewManager(managerConfig, ManagerOptions(ctrl.Options{
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	}))
	if err != nil {
		fmt.Fprintln(os.Stderr, "creating manager:", err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if redisOpen, err = redisserver.Start(redisserver.Options{}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer redisOpen.Close()
	// An ACL user "trader" and a default user, both with a password.
	if redisAuth, err = redisserver.Start(redisserver.Options{Args: []string{"--requirepass", testPassword}}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer redisAuth.Close()
	admin := redis.NewClient(&redis.Options{Addr: redisAuth.Addr, Password: testPassword})
	for _, u := range [][]any{
		{"ACL", "SETUSER", "trader", "on", ">" + testPassword, "~*", "&*", "+@all"},
		{"ACL", "SETUSER", "reader", "on", ">" + testPassword, "~*", "&*", "+@all", "-set"},
		{"ACL", "SETUSER", "nostream", "on", ">" + testPassword, "~*", "&*", "+@all", "-xadd"},
	} {
		if err := admin.Do(context.Background(), u...).Err(); err != nil {
			fmt.Fprintln(os.Stderr, "creating ACL users:", err)
			return 1
		}
	}
	_ = admin.Close()

	managerCache = mgr.GetCache()
	if reconciler, err = Setup(ctx, mgr, Options{
		EventLoggerImage: testImage, NewRedisClient: countingRedisClient, StatusRefreshInterval: testStatusRefresh,
	}); err != nil {
		fmt.Fprintln(os.Stderr, "setting up controller:", err)
		return 1
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()

	if k8sClient, err = client.New(restConfig, client.Options{Scheme: testScheme}); err != nil {
		fmt.Fprintln(os.Stderr, "creating client:", err)
		return 1
	}
	code := m.Run()
	cancel()
	if err := <-done; err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
	}
	return code
}

// managerLogs holds everything the manager logged during the tests.
var managerLogs = &lockedBuffer{}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// levelFilter passes only error lines (all lines with TEST_VERBOSE_LOGS),
// so that test output stays readable.
type levelFilter struct{ w io.Writer }

func (f levelFilter) Write(p []byte) (int, error) {
	if os.Getenv("TEST_VERBOSE_LOGS") != "" || bytes.Contains(p, []byte(`"level":"error"`)) {
		return f.w.Write(p)
	}
	return len(p), nil
}

// newNamespace gives each test its own namespace.
func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "test-"}}
	if err := k8sClient.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	return ns.Name
}

func getStrategy(g Gomega, ns, name string) *stratv1.Strategy {
	s := &stratv1.Strategy{}
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, s)).To(Succeed())
	return s
}

func condition(s *stratv1.Strategy, t string) *metav1.Condition {
	for i := range s.Status.Conditions {
		if s.Status.Conditions[i].Type == t {
			return &s.Status.Conditions[i]
		}
	}
	return nil
}

// kstatusOf computes what kstatus (kubectl wait, Flux, Argo CD) reads.
func kstatusOf(g Gomega, s *stratv1.Strategy) kstatus.Status {
	s = s.DeepCopy()
	s.SetGroupVersionKind(stratv1.GroupVersion.WithKind("Strategy"))
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(s)
	g.Expect(err).NotTo(HaveOccurred())
	res, err := kstatus.Compute(&unstructured.Unstructured{Object: m})
	g.Expect(err).NotTo(HaveOccurred())
	return res.Status
}

// markUnavailable plays the kubelet reporting every replica of the
// Deployment unready.
func markUnavailable(g Gomega, ns, name string) {
	d := &appsv1.Deployment{}
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, d)).To(Succeed())
	d.Status.ReadyReplicas, d.Status.AvailableReplicas = 0, 0
	d.Status.UnavailableReplicas = d.Status.Replicas
	d.Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionFalse, Reason: "MinimumReplicasUnavailable"}}
	g.Expect(k8sClient.Status().Update(context.Background(), d)).To(Succeed())
}

// markAvailable plays the kubelet and deployment controller, which envtest
// lacks: it reports every replica of the Deployment as available.
func markAvailable(g Gomega, ns, name string) {
	// The operator may apply the Deployment in between: read it again and
	// retry, as the deployment controller does.
	g.Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d := &appsv1.Deployment{}
		if err := k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, d); err != nil {
			return err
		}
		n := int32(1)
		if d.Spec.Replicas != nil {
			n = *d.Spec.Replicas
		}
		d.Status = appsv1.DeploymentStatus{
			ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n,
			Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable"}},
		}
		return k8sClient.Status().Update(context.Background(), d)
	})).To(Succeed())
}

// roundTrips counts, per Redis address, the round trips the reconciler's
// clients make: one per command or pipeline (connection handshakes, which a
// warm pool does not repeat, are not counted).
var roundTrips sync.Map // addr -> *atomic.Int64

func roundTripsTo(addr string) int64 {
	v, _ := roundTrips.LoadOrStore(addr, new(atomic.Int64))
	return v.(*atomic.Int64).Load()
}

func countingRedisClient(cfg messaging.RedisConfig) (redis.UniversalClient, error) {
	c, err := messaging.NewRedisClient(cfg)
	if err != nil {
		return nil, err
	}
	v, _ := roundTrips.LoadOrStore(cfg.Addrs[0], new(atomic.Int64))
	c.AddHook(roundTripHook{v.(*atomic.Int64)})
	return c, nil
}

type roundTripHook struct{ n *atomic.Int64 }

func (h roundTripHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h roundTripHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() != "hello" {
			h.n.Add(1)
		}
		return next(ctx, cmd)
	}
}
func (h roundTripHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && cmds[0].Name() != "client" {
			h.n.Add(1)
		}
		return next(ctx, cmds)
	}
}

// startRedis starts a redis-server of the test's own, which it may stop and
// restart; it is killed when the test ends.
func startRedis(t *testing.T) *redisserver.Server {
	t.Helper()
	srv, err := redisserver.Start(redisserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

// updateStrategy changes a Strategy's spec, retrying on the conflicts its
// status patches cause.
func updateStrategy(g Gomega, ns, name string, mutate func(*stratv1.Strategy)) {
	g.Eventually(func() error {
		s := &stratv1.Strategy{}
		if err := k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, s); err != nil {
			return err
		}
		mutate(s)
		return k8sClient.Update(context.Background(), s)
	}, timeout, interval).Should(Succeed())
}

// eventsFor lists the events regarding a Strategy.
func eventsFor(g Gomega, ns, name string) []eventsv1.Event {
	var list eventsv1.EventList
	g.Expect(k8sClient.List(context.Background(), &list, client.InNamespace(ns))).To(Succeed())
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Kind == "Strategy" && e.Regarding.Name == name {
			out = append(out, e)
		}
	}
	return out
}
