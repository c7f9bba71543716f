// Package fleet runs the operator over many Strategies at once, on a real
// API server (envtest) and a real Redis, with managers it starts and stops
// itself: what a restart costs is counted at the manager's own client.
package fleet

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/controllers"
	"github.com/stratops/stratops/internal/apicount"
	"github.com/stratops/stratops/internal/redisserver"
)

// startManager runs a manager (no leader election: one at a time here)
// until the returned function stops it.
func startManager(t testing.TB, cfg *rest.Config, c *apicount.Counter) (stop func()) {
	t.Helper()
	mc := rest.CopyConfig(cfg)
	mc.Wrap(c.Wrap)
	mgr, err := ctrl.NewManager(mc, controllers.ManagerOptions(ctrl.Options{
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// The same controller, started again in this process.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := controllers.Setup(ctx, mgr, controllers.Options{EventLoggerImage: "stratops:test"}); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	}
}

// standInKubelet plays the deployment controller and the kubelet, which
// envtest lacks: every Deployment in ns is reported available once its
// spec is seen. Like them it reads what it acts on from a watch (w), not
// from lists: polling a thousand Deployments with full lists would load
// the API server with work the operator does not cause. It runs until the
// returned function is called.
func standInKubelet(t testing.TB, c client.Client, w client.Reader, ns string) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			var list appsv1.DeploymentList
			if err := w.List(ctx, &list, client.InNamespace(ns), client.UnsafeDisableDeepCopy); err == nil {
				for i := range list.Items {
					d := &list.Items[i]
					if d.Status.ObservedGeneration == d.Generation && d.Status.AvailableReplicas == ptr.Deref(d.Spec.Replicas, 1) {
						continue
					}
					target := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: d.Namespace, Name: d.Name}}
					_ = c.Status().Patch(ctx, target, client.RawPatch(types.MergePatchType, available(d)))
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return func() { cancel(); <-done }
}

// watching starts this test's own watches of Deployments and Strategies,
// as the deployment controller and a user's `kubectl wait` keep theirs,
// in the namespaces named, and returns the reader of what they hold. It
// keeps only what the test reads (a Deployment's replicas and status; a
// Strategy's conditions and last probe time), so the heap this process
// reports is the manager's.
func watching(t testing.TB, cfg *rest.Config, namespaces ...string) client.Reader {
	t.Helper()
	in := map[string]cache.Config{}
	for _, ns := range namespaces {
		in[ns] = cache.Config{}
	}
	w, err := cache.New(cfg, cache.Options{
		DefaultNamespaces:           in,
		Scheme:                      controllers.Scheme(),
		ReaderFailOnMissingInformer: true,
		ByObject: map[client.Object]cache.ByObject{
			&appsv1.Deployment{}: {Transform: func(o any) (any, error) {
				d := o.(*appsv1.Deployment)
				return &appsv1.Deployment{ObjectMeta: lean(d.ObjectMeta), Spec: appsv1.DeploymentSpec{Replicas: d.Spec.Replicas}, Status: d.Status}, nil
			}},
			&stratv1.Strategy{}: {Transform: func(o any) (any, error) {
				s := o.(*stratv1.Strategy)
				kept := &stratv1.Strategy{ObjectMeta: lean(s.ObjectMeta), Status: stratv1.StrategyStatus{Conditions: s.Status.Conditions}}
				if r := s.Status.Redis; r != nil {
					kept.Status.Redis = &stratv1.RedisStatus{LastProbeTime: r.LastProbeTime}
				}
				return kept, nil
			}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	for _, o := range []client.Object{&appsv1.Deployment{}, &stratv1.Strategy{}} {
		if _, err := w.GetInformer(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	go func() { defer close(done); _ = w.Start(ctx) }()
	if !w.WaitForCacheSync(ctx) {
		t.Fatal("the test's watches did not sync")
	}
	return w
}

// lean is the part of an object's metadata the test reads.
func lean(m metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: m.Namespace, Name: m.Name, UID: m.UID, ResourceVersion: m.ResourceVersion, Generation: m.Generation}
}

func startEnv(t testing.TB) (*rest.Config, client.Client) {
	t.Helper()
	ctrl.SetLogger(logr.Discard())
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Skip("KUBEBUILDER_ASSETS is not set: run with `make test`, which builds kube-apiserver and etcd into bin/")
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	// Room for thousands of Services.
	env.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", "10.0.0.0/16")
	// Its /debug/pprof, for make scale's STRATOPS_SCALE_APISERVER_PROFILE.
	env.ControlPlane.GetAPIServer().Configure().Set("profiling", "true")
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	c, err := client.New(cfg, client.Options{Scheme: controllers.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return cfg, c
}

// waitAll waits until every Strategy in ns passes ok, as w (watching)
// holds them, and says how many did not when it gives up.
func waitAll(t testing.TB, w client.Reader, ns string, n int, what string, ok func(*stratv1.Strategy) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Minute)
	for {
		var list stratv1.StrategyList
		if err := w.List(context.Background(), &list, client.InNamespace(ns), client.UnsafeDisableDeepCopy); err != nil {
			t.Fatal(err)
		}
		good := 0
		for i := range list.Items {
			if ok(&list.Items[i]) {
				good++
			}
		}
		if good == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d of %d after 10 minutes", what, good, n)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func ready(s *stratv1.Strategy) bool {
	return apimeta.IsStatusConditionTrue(s.Status.Conditions, stratv1.ConditionReady)
}

// TestRestarts_FiveManagerRestartsOver200StrategiesCostOneStatusWriteEach:
// 200 Live Strategies on one Redis reach Ready under one manager, which is
// then stopped; five managers in turn start over them. Each restart costs
// at most one status write per Strategy (a new manager's first probe
// round), and nothing else: no child applied, no Event, no read that
// bypasses the cache.
func TestRestarts_FiveManagerRestartsOver200StrategiesCostOneStatusWriteEach(t *testing.T) {
	const strategies, restarts = 200, 5
	cfg, c := startEnv(t)
	srv, err := redisserver.Start(redisserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx := context.Background()
	const ns = "fleet"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	w := watching(t, cfg, ns)
	defer standInKubelet(t, c, w, ns)()
	count := &apicount.Counter{}
	stop := startManager(t, cfg, count)
	for i := range strategies {
		name := fmt.Sprintf("s%03d", i)
		s := &stratv1.Strategy{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: stratv1.StrategySpec{Mode: stratv1.ModeLive, Redis: &stratv1.RedisSpec{
				Address: srv.Addr, KeyPrefix: name + ":", HealthCheckInterval: &metav1.Duration{Duration: 5 * time.Second},
			}},
		}
		if err := c.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	waitAll(t, w, ns, strategies, "Ready", ready)
	toReady, total := count.Take(ns)
	t.Logf("%d Strategies to Ready: %.1f requests each: %s", strategies, float64(total)/strategies, apicount.Summary(toReady))
	time.Sleep(2 * time.Second)
	stop()
	count.Take(ns)

	for i := 1; i <= restarts; i++ {
		at := metav1.Now().Rfc3339Copy()
		stop := startManager(t, cfg, count)
		waitAll(t, w, ns, strategies, fmt.Sprintf("restart %d: probed again", i), func(s *stratv1.Strategy) bool {
			return ready(s) && s.Status.Redis != nil && s.Status.Redis.LastProbeTime != nil && !s.Status.Redis.LastProbeTime.Before(&at)
		})
		// Whatever else this manager would do after its first round, done.
		time.Sleep(3 * time.Second)
		stop()
		got, total := count.Take(ns)
		t.Logf("restart %d: %d requests: %s", i, total, apicount.Summary(got))
		if w := got["PATCH strategies/status"]; w > strategies {
			t.Errorf("restart %d: %d status writes for %d Strategies; want at most one each", i, w, strategies)
		}
		if others := total - got["PATCH strategies/status"]; others != 0 {
			t.Errorf("restart %d: %d requests besides status writes (%s); want none: no child applied, no Event, no uncached read", i, others, apicount.Summary(got))
		}
	}
}
