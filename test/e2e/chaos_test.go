//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	stratopsv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/eventlog"
	"github.com/stratops/stratops/internal/redistest"
	"github.com/stratops/stratops/pkg/messaging"
)

// sigkill kills a pod's container with SIGKILL, as the kernel's OOM killer
// or a node fault would: no SIGTERM, no preStop, nothing flushed. The
// container's process is found through the runtime, on this host.
func sigkill(t *testing.T, ns, pod, container string) {
	t.Helper()
	ctx := context.Background()
	var p corev1.Pod
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: pod}, &p); err != nil {
		t.Fatal(err)
	}
	rs, closeFn, err := kc.RuntimeClient()
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name != container || cs.ContainerID == "" {
			continue
		}
		st, err := rs.ContainerStatus(ctx, &cri.ContainerStatusRequest{ContainerId: strings.TrimPrefix(cs.ContainerID, "containerd://"), Verbose: true})
		if err != nil {
			t.Fatalf("%s/%s: %v", ns, pod, err)
		}
		pid, err := pidOf(st.Info["info"])
		if err != nil {
			t.Fatalf("%s/%s: %v", ns, pod, err)
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("SIGKILL %s/%s (pid %d): %v", ns, pod, pid, err)
		}
		return
	}
	t.Fatalf("%s/%s has no running container %s", ns, pod, container)
}

// TestChaos_TwoLoggerReplicasLoseNothingOutsideAGap: a Live Strategy's
// logger runs two replicas while 1,000 messages a second are published.
// The leader pod is deleted; once the Deployment is back to two, the next
// leader's container is SIGKILLed. From the history: every message Redis
// took is there once, or fell in a gap the loggers reported.
func TestChaos_TwoLoggerReplicasLoseNothingOutsideAGap(t *testing.T) {
	timed(t)
	managerLogsOnFailure(t)
	ctx := context.Background()
	ns := namespace(t, "e2e-chaos-logger")
	srv := hostRedis(t)
	const name, prefix = "ha", "ha:"
	s := &stratopsv1.Strategy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: stratopsv1.StrategySpec{
			Mode:        stratopsv1.ModeLive,
			Redis:       &stratopsv1.RedisSpec{Address: srv.Addr, KeyPrefix: prefix, HealthCheckInterval: &metav1.Duration{Duration: 3 * time.Second}},
			EventLogger: stratopsv1.EventLoggerSpec{Replicas: ptr.To[int32](2)},
		},
	}
	if err := k8s.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	if out, err := kubectl("-n", ns, "wait", "--for=condition=Ready", "strategy/"+name, "--timeout=180s"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	twoReady := func() error {
		pods, err := strategyPods(ns, name, "event-logger")
		if err != nil {
			return err
		}
		return runningReady(pods, 2)
	}
	eventually(t, 120*time.Second, "two logger replicas ready", twoReady)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	// The lease's value is "<token>|<pod>": a new token is a new term,
	// even for a container restarted in the same pod.
	lease := func() string {
		v, _ := rdb.Get(ctx, eventlog.LeaseKey(prefix)).Result()
		return v
	}

	// 1,000 messages a second, each with its sequence number and the time
	// Redis took it.
	var mu sync.Mutex
	published := map[int]time.Time{}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for seq := 0; ; seq++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			at := time.Now()
			body, _ := messaging.Envelope(at, "position_monitor", "updated", map[string]any{"seq": seq})
			if rdb.Publish(ctx, prefix+"position:updated", body).Err() == nil {
				mu.Lock()
				published[seq] = at
				mu.Unlock()
			}
		}
	}()
	// takeover waits for a new term of the lease after old and returns
	// it, and how long it took from killedAt.
	takeover := func(old string, killedAt time.Time) (string, time.Duration) {
		var next string
		eventually(t, 60*time.Second, "a logger replica takes the lease after "+eventlog.LeaseHolderName(old), func() error {
			if next = lease(); next == "" || next == old {
				return fmt.Errorf("the lease is %q", next)
			}
			return nil
		})
		return next, time.Since(killedAt)
	}
	time.Sleep(3 * time.Second)
	first := lease()
	if first == "" {
		t.Fatal("no logger holds the lease")
	}
	deletedAt := time.Now()
	if err := k8s.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: eventlog.LeaseHolderName(first)}}); err != nil {
		t.Fatal(err)
	}
	second, afterDelete := takeover(first, deletedAt)
	eventually(t, 120*time.Second, "the Deployment back at two ready replicas", twoReady)
	time.Sleep(2 * time.Second)
	killedAt := time.Now()
	sigkill(t, ns, eventlog.LeaseHolderName(second), "eventlogger")
	third, afterKill := takeover(second, killedAt)
	time.Sleep(3 * time.Second)
	close(stop)
	<-done

	// Settled: the history no longer grows.
	hist := prefix + messaging.KeyEventsHistory
	var n int64 = -1
	eventually(t, 60*time.Second, "the history settles", func() error {
		time.Sleep(time.Second)
		m, err := rdb.XLen(ctx, hist).Result()
		if err != nil {
			return err
		}
		if m != n {
			n = m
			return fmt.Errorf("history at %d entries, still growing", m)
		}
		return nil
	})
	entries, err := rdb.XRange(ctx, hist, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]int{}
	var gaps []redistest.Span
	for _, e := range entries {
		ch, _ := e.Values["channel"].(string)
		raw, _ := e.Values["message"].(string)
		switch ch {
		case "position:updated":
			var md struct{ Metadata struct{ Seq int } }
			if err := json.Unmarshal([]byte(raw), &md); err != nil {
				t.Fatalf("history entry %s: %v", e.ID, err)
			}
			seen[md.Metadata.Seq]++
		case "gap":
			var g struct{ Metadata struct{ Start, End string } }
			_ = json.Unmarshal([]byte(raw), &g)
			start, err1 := messaging.ParseTimestamp(g.Metadata.Start)
			end, err2 := messaging.ParseTimestamp(g.Metadata.End)
			if err1 != nil || err2 != nil {
				t.Fatalf("gap entry %s has no start and end: %s", e.ID, raw)
			}
			gaps = append(gaps, redistest.Span{Start: start, End: end})
		}
	}
	lost, outside, dup := redistest.Tally(published, seen, gaps)
	t.Logf("two logger replicas at 1,000 msg/s: leader %s deleted, %s took over after %s; %s SIGKILLed, %s took over after %s; %d messages taken by Redis, %d in the history, %d lost (%d outside the %d reported gaps), %d duplicated",
		eventlog.LeaseHolderName(first), eventlog.LeaseHolderName(second), afterDelete.Round(time.Millisecond),
		eventlog.LeaseHolderName(second), eventlog.LeaseHolderName(third), afterKill.Round(time.Millisecond),
		len(published), len(seen), lost, outside, len(gaps), dup)
	timings["chaos: logger takeover after a delete"] = afterDelete
	timings["chaos: logger takeover after a SIGKILL"] = afterKill
	if dup > 0 || outside > 0 {
		t.Fatalf("%d duplicated, %d lost outside a reported gap; want none", dup, outside)
	}
	if len(published) < 5000 {
		t.Fatalf("only %d messages published: the scenario did not run at load", len(published))
	}
}

// watchEngineOverlap polls a Strategy's engine pods, ten times a second,
// until the returned function is called; that returns the most pods seen
// at once with a container running, those being deleted included.
func watchEngineOverlap(t *testing.T, ns, name string) func() int {
	t.Helper()
	stop, done := make(chan struct{}), make(chan struct{})
	most := 0
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			pods, err := strategyPods(ns, name, "engine")
			if err != nil {
				continue
			}
			running := 0
			for _, p := range pods {
				for _, cs := range p.Status.ContainerStatuses {
					if cs.State.Running != nil {
						running++
						break
					}
				}
			}
			most = max(most, running)
		}
	}()
	var once sync.Once
	return func() int {
		once.Do(func() { close(stop); <-done })
		return most
	}
}

// TestChaos_FiveManagerRestartsChangeNothing: with Live Strategies running,
// every manager pod is deleted five times over. Across the restarts no
// child is written (each keeps its resourceVersion), no engine template
// changes, no Event is sent, and each Strategy's status is written at
// most once per restart (a new leader's first probe round).
func TestChaos_FiveManagerRestartsChangeNothing(t *testing.T) {
	timed(t)
	managerLogsOnFailure(t)
	ctx := context.Background()
	ns := namespace(t, "e2e-chaos-restarts")
	srv := hostRedis(t)
	names := []string{"one", "two"}
	for _, n := range names {
		readyLiveWithEngine(t, ns, n, srv.Addr, nil)
	}
	for _, n := range names {
		runningEnginePod(t, ns, n)
	}
	// Settled: the engines' first events are in, the status written.
	time.Sleep(5 * time.Second)
	snapshot := func() string {
		out, err := kubectl("-n", ns, "get", "deployments,replicasets,services,configmaps,serviceaccounts,secrets,networkpolicies,jobs",
			"-l", "app.kubernetes.io/managed-by=stratops", "--sort-by=.metadata.name",
			"-o", "custom-columns=KIND:.kind,NAME:.metadata.name,UID:.metadata.uid,RV:.metadata.resourceVersion,GEN:.metadata.generation", "--no-headers")
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(strings.Fields(out), " ")
	}
	templates := func() string {
		out, err := kubectl("-n", ns, "get", "deployments", "-l", "app.kubernetes.io/component=engine",
			"--sort-by=.metadata.name", "-o", "jsonpath={range .items[*]}{.spec.template}{\"\\n\"}{end}")
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	strategyEvents := func() int {
		var n int
		var list eventsv1.EventList
		if err := k8s.List(ctx, &list, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		for _, e := range list.Items {
			if e.Regarding.Kind != "Strategy" {
				continue
			}
			switch {
			case e.Series != nil:
				n += int(e.Series.Count)
			case e.DeprecatedCount > 0:
				n += int(e.DeprecatedCount)
			default:
				n++
			}
		}
		return n
	}
	children0, templates0, events0 := snapshot(), templates(), strategyEvents()

	// Every write of a Strategy, from a watch.
	ctrllog.SetLogger(logr.Discard())
	wc, err := client.NewWithWatch(kc.Config, client.Options{Scheme: k8s.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	w, err := wc.Watch(ctx, &stratopsv1.StrategyList{}, client.InNamespace(ns))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	writes := map[string]int{}
	// What each write said, for the failure message: which part of the
	// status moved.
	said := map[string][]string{}
	go func() {
		for ev := range w.ResultChan() {
			if s, ok := ev.Object.(*stratopsv1.Strategy); ok && ev.Type == "MODIFIED" {
				mu.Lock()
				writes[s.Name]++
				said[s.Name] = append(said[s.Name], statusSummary(s))
				mu.Unlock()
			}
		}
	}()
	defer w.Stop()

	const restarts = 5
	for i := 1; i <= restarts; i++ {
		at := time.Now()
		if out, err := kubectl("-n", operatorNS, "delete", "pods", "-l", "app.kubernetes.io/component=manager", "--wait=false"); err != nil {
			t.Fatalf("restart %d: %v\n%s", i, err, out)
		}
		eventually(t, 120*time.Second, fmt.Sprintf("restart %d: a new manager leads and has probed every Strategy", i), func() error {
			leader := leaderPodOrEmpty()
			if leader == "" {
				return fmt.Errorf("no leader")
			}
			var p corev1.Pod
			if err := k8s.Get(ctx, client.ObjectKey{Namespace: operatorNS, Name: leader}, &p); err != nil {
				return err
			}
			if p.CreationTimestamp.Time.Before(at.Truncate(time.Second)) {
				return fmt.Errorf("the leader %s is a pod from before the restart", leader)
			}
			for _, n := range names {
				s, err := getStrategy(ns, n)
				if err != nil {
					return err
				}
				if s.Status.Redis == nil || s.Status.Redis.LastProbeTime == nil || s.Status.Redis.LastProbeTime.Time.Before(at.Truncate(time.Second)) {
					return fmt.Errorf("%s not probed since the restart", n)
				}
				if c := condition(s, stratopsv1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
					return fmt.Errorf("%s not Ready: %+v", n, c)
				}
			}
			return nil
		})
		t.Logf("restart %d: reconciling again after %s", i, time.Since(at).Round(100*time.Millisecond))
	}
	if out, err := kubectl("-n", operatorNS, "rollout", "status", "deployment/"+managerApp, "--timeout=120s"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// Whatever a reconcile after the last restart would write, written.
	time.Sleep(5 * time.Second)
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d manager restarts: status writes per Strategy %v; Strategy events %d → %d", restarts, writes, events0, strategyEvents())
	if got := snapshot(); got != children0 {
		t.Errorf("children were written across the restarts:\nbefore %s\nafter  %s", children0, got)
	}
	if templates() != templates0 {
		t.Error("an engine's pod template changed across the restarts")
	}
	if got := strategyEvents(); got != events0 {
		t.Errorf("the restarts sent %d Events about Strategies; want none", got-events0)
	}
	for _, n := range names {
		if writes[n] > restarts {
			t.Errorf("%s: %d status writes over %d restarts; want at most one each; the writes:\n%s", n, writes[n], restarts, strings.Join(said[n], "\n"))
		}
	}
}

// statusSummary is one line of what a Strategy's status says: its
// version, phase, conditions, Redis probe round and the channels and keys
// found unhealthy.
func statusSummary(s *stratopsv1.Strategy) string {
	var b strings.Builder
	fmt.Fprintf(&b, "rv=%s gen=%d/%d phase=%s", s.ResourceVersion, s.Status.ObservedGeneration, s.Generation, s.Status.Phase)
	for _, c := range s.Status.Conditions {
		fmt.Fprintf(&b, " %s=%s/%s", c.Type, c.Status, c.Reason)
	}
	if r := s.Status.Redis; r != nil {
		probed := ""
		if r.LastProbeTime != nil {
			probed = r.LastProbeTime.UTC().Format("15:04:05")
		}
		fmt.Fprintf(&b, " probed=%s failures=%d", probed, r.ConsecutiveFailures)
		for _, p := range r.Probes {
			if !p.OK {
				fmt.Fprintf(&b, " probe %s failed: %s", p.Name, p.Message)
			}
		}
	}
	for _, c := range s.Status.Channels {
		if !c.Healthy {
			fmt.Fprintf(&b, " channel %s %s", c.Name, c.Reason)
		}
	}
	for _, k := range s.Status.Keys {
		if !k.Healthy {
			fmt.Fprintf(&b, " key %s %s", k.Name, k.Reason)
		}
	}
	if l := s.Status.EventLogger; l != nil {
		fmt.Fprintf(&b, " logger %d/%d leader=%s", l.ReadyReplicas, l.Replicas, l.Leader)
	}
	return b.String()
}
