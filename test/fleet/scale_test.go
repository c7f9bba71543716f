package fleet

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
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
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
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
// creates from 8 workers: the baseline. Before it, the floor: what the
// least an operator could do per Strategy costs the same API server, with
// the operator stopped (its Strategies are not the operator's): the Strategy
// created, as the operator's run creates it; the same children by plain
// creates; the logger marked available, as the stand-in kubelet does; and
// one status write, the template's Ready status. Each of the three starts
// with the same Services (see deleteServices). It reports the time to
// all Ready beside the baseline's and the floor's and their ratios, the
// API server's CPU per Strategy in each, the manager's API requests per
// Strategy, this process's peak heap and CPU over the operator's run and
// its peak RSS (the manager runs in it), the heap in use once all are
// Ready and what holds it (heapBreakdown), and Redis's connections. Run
// it with -benchtime=1x (make scale).
func BenchmarkScale_LiveStrategiesToReady(b *testing.B) {
	n, cfg, c, srv := scaleSetup(b, "template", "baseline", "floor", "scale")
	ctx := context.Background()
	live := func(ns, name string) *stratv1.Strategy { return liveStrategy(ns, name, srv.Addr) }
	count := &apicount.Counter{}
	stop := startManager(b, cfg, count)
	defer func() { stop() }()

	// The children of one Strategy, as the operator makes them.
	w := watching(b, cfg, "template", "scale")
	stopTemplate := standInKubelet(b, c, w, "template")
	if err := c.Create(ctx, live("template", "t")); err != nil {
		b.Fatal(err)
	}
	waitAll(b, w, "template", 1, "the template Strategy Ready", ready)
	stopTemplate()
	made := templateChildren(b, c)
	readyStatus := templateStatus(b, c)
	// Stopped while the floor's Strategies exist, which are not its to
	// reconcile; started again for the operator's run.
	stop()
	stop = func() {}
	apiServer := childProcess(b, "kube-apiserver")

	for b.Loop() {
		children := func(ns string, i int, markAvailable bool) error {
			for _, o := range made {
				cp := o.DeepCopyObject().(client.Object)
				cp.SetNamespace(ns)
				cp.SetName(strings.Replace(cp.GetName(), "t-", fmt.Sprintf("s%05d-", i), 1))
				if err := c.Create(ctx, cp); err != nil {
					return err
				}
				if d, ok := cp.(*appsv1.Deployment); ok && markAvailable {
					if err := c.Status().Patch(ctx, d, client.RawPatch(types.MergePatchType, available(d))); err != nil {
						return err
					}
				}
			}
			return nil
		}
		// Each of the three starts with the same Services: the API server
		// counts every Service address it holds after each it gives out,
		// so a Service made later costs more, by thousands at 5,000.
		apiCPU := processCPU(b, apiServer)
		floor := parallel(b, n, func(i int) error {
			s := live("floor", fmt.Sprintf("s%05d", i))
			if err := c.Create(ctx, s); err != nil {
				return err
			}
			if err := children("floor", i, true); err != nil {
				return err
			}
			return c.Status().Patch(ctx, s, client.RawPatch(types.MergePatchType, readyStatus))
		})
		floorCPU := processCPU(b, apiServer) - apiCPU
		deleteServices(b, c, "floor")
		apiCPU = processCPU(b, apiServer)
		baseline := parallel(b, n, func(i int) error { return children("baseline", i, false) })
		baselineCPU := processCPU(b, apiServer) - apiCPU
		deleteServices(b, c, "baseline")
		if err := c.DeleteAllOf(ctx, &stratv1.Strategy{}, client.InNamespace("floor")); err != nil {
			b.Fatal(err)
		}
		stop = startManager(b, cfg, count)

		count.Take("scale")
		stopProfile := apiServerProfile(b, cfg)
		peak := sampleHeap(b)
		cpu0 := cpuTime()
		apiCPU = processCPU(b, apiServer)
		defer standInKubelet(b, c, w, "scale")()
		start := time.Now()
		parallel(b, n, func(i int) error { return c.Create(ctx, live("scale", fmt.Sprintf("s%05d", i))) })
		waitAll(b, w, "scale", n, "Ready", ready)
		took := time.Since(start)
		operatorCPU := processCPU(b, apiServer) - apiCPU
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
		perStrategy := func(d time.Duration) float64 { return float64(d.Milliseconds()) / float64(n) }
		b.Logf("the floor (the Strategy created, its children by plain creates, one status write): %s (%.2fx the plain creates); the API server's CPU per Strategy: %.1f ms in the plain creates, %.1f ms in the floor, %.1f ms in the operator's run",
			floor.Round(100*time.Millisecond), floor.Seconds()/baseline.Seconds(), perStrategy(baselineCPU), perStrategy(floorCPU), perStrategy(operatorCPU))
		b.ReportMetric(took.Seconds(), "s-to-all-ready")
		b.ReportMetric(baseline.Seconds(), "s-plain-creates")
		b.ReportMetric(took.Seconds()/baseline.Seconds(), "ratio")
		b.ReportMetric(floor.Seconds()/baseline.Seconds(), "floor-ratio")
		b.ReportMetric(perStrategy(operatorCPU), "apiserver-ms/strategy")
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

// templateStatus is the template Strategy's status, Ready, as a merge
// patch of the status.
func templateStatus(b *testing.B, c client.Client) []byte {
	b.Helper()
	var s stratv1.Strategy
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: "template", Name: "t"}, &s); err != nil {
		b.Fatal(err)
	}
	patch, err := json.Marshal(map[string]any{"status": s.Status})
	if err != nil {
		b.Fatal(err)
	}
	return patch
}

// available is the merge patch of a Deployment's status that says all its
// replicas are available, as the stand-in kubelet writes it.
func available(d *appsv1.Deployment) []byte {
	n := ptr.Deref(d.Spec.Replicas, 1)
	status, _ := json.Marshal(map[string]any{"status": appsv1.DeploymentStatus{
		ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n,
		Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable"}},
	}})
	return status
}

// childProcess is the process ID of this process's child of that name
// (envtest's kube-apiserver).
func childProcess(b *testing.B, name string) int {
	b.Helper()
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		b.Fatal(err)
	}
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if comm, f, err := procStat(pid); err == nil && comm == name && len(f) > 1 && f[1] == strconv.Itoa(os.Getpid()) {
			return pid
		}
	}
	b.Fatalf("no child process %s", name)
	return 0
}

// deleteServices deletes the Services in ns, from 8 workers (a Service has
// no delete of a collection), and with them their addresses.
func deleteServices(b *testing.B, c client.Client, ns string) {
	b.Helper()
	var list corev1.ServiceList
	if err := c.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		b.Fatal(err)
	}
	parallel(b, len(list.Items), func(i int) error {
		return client.IgnoreNotFound(c.Delete(context.Background(), &list.Items[i]))
	})
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
// returned function is called, which returns the peak. With
// STRATOPS_SCALE_HEAP_PROFILE set, it also writes to that file with
// ".peak" added the heap profile taken when the garbage collector's heap
// goal was highest: what was live then, which the peak heap is twice.
func sampleHeap(b *testing.B) (peak func() uint64) {
	stop, done := make(chan struct{}), make(chan struct{})
	var most, goal uint64
	var atPeak bytes.Buffer
	file := os.Getenv("STRATOPS_SCALE_HEAP_PROFILE")
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/heap/goal:bytes"}}
	go func() {
		defer close(done)
		for {
			metrics.Read(s)
			most = max(most, s[0].Value.Uint64())
			if g := s[1].Value.Uint64(); file != "" && g > goal+goal/20 {
				goal = g
				atPeak.Reset()
				_ = pprof.Lookup("heap").WriteTo(&atPeak, 0)
			}
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return func() uint64 {
		close(stop)
		<-done
		if file != "" {
			if err := os.WriteFile(file+".peak", atPeak.Bytes(), 0o600); err != nil {
				b.Error(err)
			}
		}
		runtime.GC()
		return most
	}
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
		resp, err := hc.Get(strings.TrimSuffix(cfg.Host, "/") + "/debug/pprof/profile?seconds=" + cmp.Or(os.Getenv("STRATOPS_SCALE_APISERVER_PROFILE_SECONDS"), "10"))
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
