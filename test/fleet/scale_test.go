package fleet

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/apicount"
	"github.com/stratops/stratops/internal/children"
	"github.com/stratops/stratops/internal/redisserver"
)

// BenchmarkScale_LiveStrategiesToReady: N Live Strategies on one Redis
// (STRATOPS_SCALE_N, default 1,000), created by 8 workers against envtest
// (a /16 Service range), a stand-in kubelet marking each logger available.
// In the same run, on the same API server, the same children (copied
// from those the operator made for one Strategy) are first made by plain
// creates from 8 workers: the baseline. It reports the time to all Ready
// beside the baseline's and their ratio, the manager's API requests per
// Strategy, this process's peak heap and CPU over the operator's run and
// its peak RSS (the manager runs in it), the heap in use once all are
// Ready and what holds it (heapBreakdown), and Redis's connections. Run
// it with -benchtime=1x (make scale).
func BenchmarkScale_LiveStrategiesToReady(b *testing.B) {
	n, cfg, c, srv := scaleSetup(b, "template", "baseline", "scale")
	ctx := context.Background()
	live := func(ns, name string) *stratv1.Strategy { return liveStrategy(ns, name, srv.Addr) }
	count := &apicount.Counter{}
	stop := startManager(b, cfg, count)
	defer stop()

	// The children of one Strategy, as the operator makes them.
	w := watching(b, cfg, "template", "scale")
	stopTemplate := standInKubelet(b, c, w, "template")
	if err := c.Create(ctx, live("template", "t")); err != nil {
		b.Fatal(err)
	}
	waitAll(b, w, "template", 1, "the template Strategy Ready", ready)
	stopTemplate()
	made := templateChildren(b, c)

	for b.Loop() {
		baseline := parallel(b, n, func(i int) error {
			for _, o := range made {
				cp := o.DeepCopyObject().(client.Object)
				cp.SetNamespace("baseline")
				cp.SetName(strings.Replace(cp.GetName(), "t-", fmt.Sprintf("s%05d-", i), 1))
				if err := c.Create(ctx, cp); err != nil {
					return err
				}
			}
			return nil
		})

		count.Take("scale")
		stopProfile := apiServerProfile(b, cfg)
		peak := sampleHeap()
		cpu0 := cpuTime()
		defer standInKubelet(b, c, w, "scale")()
		start := time.Now()
		parallel(b, n, func(i int) error { return c.Create(ctx, live("scale", fmt.Sprintf("s%05d", i))) })
		waitAll(b, w, "scale", n, "Ready", ready)
		took := time.Since(start)
		stopProfile()
		cpu := cpuTime() - cpu0
		heap := peak()
		inUse, holders := heapBreakdown(b)
		reqs, total := count.Take("scale")
		conns := redis.NewClient(&redis.Options{Addr: srv.Addr})
		clients, _ := conns.ClientList(ctx).Result()
		_ = conns.Close()
		rss := peakRSS(b)
		binary := procStatus(b, "RssFile")
		b.Logf("%d Live Strategies: all Ready in %s; the same children by plain creates in %s (%.2fx); %.1f requests per Strategy (%s); peak heap %d MiB; peak RSS %d MiB (%d MiB of it now the binary's mapped pages); CPU %s; %d Redis connections",
			n, took.Round(100*time.Millisecond), baseline.Round(100*time.Millisecond), took.Seconds()/baseline.Seconds(),
			float64(total)/float64(n), apicount.Summary(reqs), heap>>20, rss>>20, binary>>20, cpu.Round(100*time.Millisecond), strings.Count(clients, "\n")-1)
		b.ReportMetric(took.Seconds(), "s-to-all-ready")
		b.ReportMetric(baseline.Seconds(), "s-plain-creates")
		b.ReportMetric(took.Seconds()/baseline.Seconds(), "ratio")
		b.ReportMetric(float64(total)/float64(n), "requests/strategy")
		b.ReportMetric(float64(heap>>20), "peak-heap-MiB")
		b.ReportMetric(float64(rss>>20), "peak-RSS-MiB")
		b.ReportMetric(float64(inUse>>20), "in-use-heap-MiB")
		b.Logf("heap in use with all Ready, after a GC: %d MiB (%s)", inUse>>20, holders)
	}
}

// scaleSetup starts what a scale benchmark runs on: envtest, with the
// namespaces named, and one Redis (stopped when the benchmark ends). n is
// STRATOPS_SCALE_N, default 1,000.
func scaleSetup(b *testing.B, namespaces ...string) (n int, cfg *rest.Config, c client.Client, srv *redisserver.Server) {
	b.Helper()
	n = 1000
	if v, err := strconv.Atoi(os.Getenv("STRATOPS_SCALE_N")); err == nil && v > 0 {
		n = v
	}
	cfg, c = startEnv(b)
	srv, err := redisserver.Start(redisserver.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Close)
	for _, ns := range namespaces {
		if err := c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			b.Fatal(err)
		}
	}
	return n, cfg, c, srv
}

// liveStrategy is a scale benchmark's Strategy: Live, its own key prefix,
// probed every 10 seconds.
func liveStrategy(ns, name, redisAddr string) *stratv1.Strategy {
	return &stratv1.Strategy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: stratv1.StrategySpec{Mode: stratv1.ModeLive, Redis: &stratv1.RedisSpec{
			Address: redisAddr, KeyPrefix: name + ":", HealthCheckInterval: &metav1.Duration{Duration: 10 * time.Second},
		}},
	}
}

// templateChildren reads what the operator made for the template
// Strategy, as objects to create again elsewhere.
func templateChildren(b *testing.B, c client.Client) []client.Object {
	b.Helper()
	ctx := context.Background()
	sel := client.MatchingLabels{"stratops.dev/strategy": "t"}
	var out []client.Object
	for _, list := range []client.ObjectList{&corev1.ConfigMapList{}, &corev1.ServiceAccountList{}, &corev1.ServiceList{},
		&networkingv1.NetworkPolicyList{}, &appsv1.DeploymentList{}, &corev1.SecretList{}} {
		if err := c.List(ctx, list, client.InNamespace("template"), sel); err != nil {
			b.Fatal(err)
		}
		items, err := apimeta.ExtractList(list)
		if err != nil {
			b.Fatal(err)
		}
		for _, item := range items {
			o := item.(client.Object)
			o.SetResourceVersion("")
			o.SetUID("")
			o.SetOwnerReferences(nil)
			o.SetManagedFields(nil)
			o.SetCreationTimestamp(metav1.Time{})
			// Not the operator's: its cache selects what it made by this
			// label, and a cluster's other objects are not in it. Left on,
			// the manager would also hold the baseline's children (6,000
			// objects at a thousand), which are no cost of its own.
			l := o.GetLabels()
			l[children.LabelManagedBy] = "baseline"
			o.SetLabels(l)
			if s, ok := o.(*corev1.Service); ok {
				s.Spec.ClusterIP, s.Spec.ClusterIPs = "", nil
			}
			out = append(out, o)
		}
	}
	if len(out) < 6 {
		b.Fatalf("the template Strategy has %d children; want at least 6", len(out))
	}
	return out
}

// parallel runs f for 0..n-1 on 8 workers and returns how long it took.
func parallel(b *testing.B, n int, f func(int) error) time.Duration {
	b.Helper()
	start := time.Now()
	work := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for range 8 {
		wg.Go(func() {
			for i := range work {
				if err := f(i); err != nil {
					mu.Lock()
					first = cmpOr(first, err)
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	if first != nil {
		b.Fatal(first)
	}
	return time.Since(start)
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// sampleHeap samples this process's heap in use every 100 ms until the
// returned function is called, which returns the peak.
func sampleHeap() (peak func() uint64) {
	stop, done := make(chan struct{}), make(chan struct{})
	var most uint64
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	go func() {
		defer close(done)
		for {
			metrics.Read(s)
			most = max(most, s[0].Value.Uint64())
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return func() uint64 { close(stop); <-done; runtime.GC(); return most }
}

// peakRSS is this process's peak resident set (VmHWM): the manager's and
// the test's together (its client, its watches, the baseline's creates),
// and the pages of the binary it ran.
func peakRSS(b *testing.B) uint64 { return procStatus(b, "VmHWM") }

// procStatus is a figure of this process's /proc/self/status, in bytes.
func procStatus(b *testing.B, field string) uint64 {
	b.Helper()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	return statusField(b, status, field)
}

// statusField reads a figure in kB of a /proc status file, in bytes.
func statusField(b *testing.B, status []byte, field string) uint64 {
	b.Helper()
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatalf("no %s in %s", field, status)
	return 0
}

// cpuTime is this process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// apiServerProfile, with STRATOPS_SCALE_APISERVER_PROFILE set to a file,
// takes the API server's CPU profile (its /debug/pprof) over the first 10
// seconds of the operator's run and writes it there, for go tool pprof;
// the returned function waits for it.
func apiServerProfile(b *testing.B, cfg *rest.Config) (wait func()) {
	file := os.Getenv("STRATOPS_SCALE_APISERVER_PROFILE")
	if file == "" {
		return func() {}
	}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		resp, err := hc.Get(strings.TrimSuffix(cfg.Host, "/") + "/debug/pprof/profile?seconds=10")
		if err != nil {
			done <- err
			return
		}
		defer func() { _ = resp.Body.Close() }()
		body, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("%s: %s", resp.Status, body)
		}
		if err == nil {
			err = os.WriteFile(file, body, 0o600)
		}
		done <- err
	}()
	return func() {
		if err := <-done; err != nil {
			b.Errorf("the API server's profile: %v", err)
		}
	}
}
