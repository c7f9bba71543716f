//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stratopsv1 "github.com/stratops/stratops/api/v1"
)

// sampleEngine is a Strategy engine running the project's image's
// /sampleengine, which plays the standard's chain against the Redis the
// operator hands it; it meets the restricted Pod Security Standard.
func sampleEngine() *stratopsv1.EngineSpec {
	return &stratopsv1.EngineSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
		SecurityContext: &corev1.PodSecurityContext{
			RunAsNonRoot:   ptr.To(true),
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		TerminationGracePeriodSeconds: ptr.To[int64](5),
		Containers: []corev1.Container{{
			Name:            "engine",
			Image:           engineImage,
			ImagePullPolicy: corev1.PullIfNotPresent,
			Command:         []string{"/sampleengine"},
			Args:            []string{"--interval=500ms", "--malformed-every=20"},
			SecurityContext: &corev1.SecurityContext{
				AllowPrivilegeEscalation: ptr.To(false),
				ReadOnlyRootFilesystem:   ptr.To(true),
				RunAsNonRoot:             ptr.To(true),
				Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			},
		}},
	}}}
}

// TestBacktestWithoutRedis: a Backtest with no Redis runs its event logger
// on the in-memory bus; the pod passes its real readiness probe and the
// Strategy is Ready.
func TestBacktestWithoutRedis(t *testing.T) {
	timed(t)
	ns := namespace(t, "e2e-backtest")
	s := &stratopsv1.Strategy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "btc-carry"},
		Spec:       stratopsv1.StrategySpec{Mode: stratopsv1.ModeBacktest},
	}
	if err := k8s.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if out, err := kubectl("-n", ns, "wait", "--for=condition=Ready", "strategy/btc-carry", "--timeout=180s"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	pods, err := strategyPods(ns, "btc-carry", "event-logger")
	if err != nil {
		t.Fatal(err)
	}
	if err := runningReady(pods, 1); err != nil {
		t.Fatalf("event logger: %v", err)
	}
	got, err := getStrategy(ns, "btc-carry")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.Redis == nil || !got.Status.Redis.InMemoryFallback {
		t.Fatalf("status.redis.inMemoryFallback is not true: %+v", got.Status.Redis)
	}
	if got.Status.Phase != stratopsv1.PhaseRunning {
		t.Fatalf("phase %s, want Running", got.Status.Phase)
	}
	// The event logger says so itself, in its log.
	out, err := kubectl("-n", ns, "logs", "deployment/btc-carry-eventlogger")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.ToLower(out), "memory") {
		t.Fatalf("the event logger's log does not mention its in-memory bus:\n%s", out)
	}
}

const redisPassword = "e2e-s3cret-pw"

// TestLiveRedisGateLossAndRecovery: Live Strategies behind a password
// protected Redis outside the cluster. Gated with no pods while Redis is
// down; rolled out once it is up, channels and keys healthy; when Redis
// dies, Halt scales the engine to zero and Alert keeps it; when Redis comes
// back both recover on their own, and every event the engines published
// is in events:history exactly once.
func TestLiveRedisGateLossAndRecovery(t *testing.T) {
	timed(t)
	ctx := context.Background()
	ns := namespace(t, "e2e-live")
	srv := hostRedis(t, "--requirepass", redisPassword)
	if err := srv.Stop(); err != nil { // Redis is down when the Strategies arrive
		t.Fatal(err)
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "redis-auth", Labels: map[string]string{stratopsv1.CredentialsLabel: "true"}},
		StringData: map[string]string{"password": redisPassword},
	}
	if err := k8s.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	policies := map[string]stratopsv1.RedisLossPolicy{"live-halt": stratopsv1.RedisLossHalt, "live-alert": stratopsv1.RedisLossAlert}
	for name, policy := range policies {
		s := &stratopsv1.Strategy{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: stratopsv1.StrategySpec{
				Mode:            stratopsv1.ModeLive,
				RedisLossPolicy: policy,
				Redis: &stratopsv1.RedisSpec{
					Address:             srv.Addr,
					PasswordSecretRef:   &stratopsv1.SecretKeySelector{Name: "redis-auth", Key: "password"},
					KeyPrefix:           name + ":",
					HealthCheckInterval: &metav1.Duration{Duration: 3 * time.Second},
				},
				Engine: sampleEngine(),
			},
		}
		if err := k8s.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}

	t.Log("Redis down: both Strategies Gated, and no pod of theirs")
	start := time.Now()
	for name := range policies {
		eventually(t, 60*time.Second, name+" Gated", func() error {
			s, err := getStrategy(ns, name)
			if err != nil {
				return err
			}
			if s.Status.Phase != stratopsv1.PhaseGated {
				return fmt.Errorf("phase %q", s.Status.Phase)
			}
			if s.Status.Redis == nil || s.Status.Redis.ConsecutiveFailures < 2 {
				return fmt.Errorf("fewer than 2 failed probe rounds yet: %+v", s.Status.Redis)
			}
			return nil
		})
	}
	var pods corev1.PodList
	if err := k8s.List(ctx, &pods, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 0 {
		t.Fatalf("%d pods exist while Redis is down, want none", len(pods.Items))
	}
	if out, _ := kubectl("-n", ns, "get", "deployments", "-o", "name"); strings.TrimSpace(out) != "" && !strings.Contains(out, "No resources") {
		t.Fatalf("Deployments exist while Redis is down: %s", out)
	}
	timings["live: gated verified"] = time.Since(start)

	t.Log("Redis up: event logger and engine pods run, Strategies Ready, channels and keys healthy")
	start = time.Now()
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, Password: redisPassword})
	defer rdb.Close()
	observers := map[string]*observer{}
	for name := range policies {
		observers[name] = observe(t, rdb, name+":")
	}
	for name := range policies {
		if out, err := kubectl("-n", ns, "wait", "--for=condition=Ready", "strategy/"+name, "--timeout=180s"); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		for _, component := range []string{"event-logger", "engine"} {
			eventually(t, 60*time.Second, name+" "+component+" pod Running and Ready", func() error {
				pods, err := strategyPods(ns, name, component)
				if err != nil {
					return err
				}
				return runningReady(pods, 1)
			})
		}
	}
	timings["live: Ready after Redis up"] = time.Since(start)
	for name := range policies {
		eventually(t, 60*time.Second, name+" channels and keys healthy", func() error {
			s, err := getStrategy(ns, name)
			if err != nil {
				return err
			}
			if s.Status.Phase != stratopsv1.PhaseRunning {
				return fmt.Errorf("phase %s", s.Status.Phase)
			}
			if !full(s.Status.ChannelsSummary) || !full(s.Status.KeysSummary) {
				return fmt.Errorf("channels %s keys %s", s.Status.ChannelsSummary, s.Status.KeysSummary)
			}
			return nil
		})
	}
	timings["live: channels and keys healthy"] = time.Since(start)
	out, err := kubectl("-n", ns, "get", "strategies")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kubectl get strategies:\n%s", out)
	n1 := historyLen(t, rdb, "live-halt:")
	eventually(t, 30*time.Second, "events:history growing", func() error {
		if n2 := historyLen(t, rdb, "live-halt:"); n2 <= n1 {
			return fmt.Errorf("events:history stays at %d", n2)
		}
		return nil
	})

	// Stop watching shortly before the kill: what was seen was published
	// while Redis was up, and the logger had it in the same instant.
	seen := map[string]map[string]int{}
	for name, o := range observers {
		seen[name] = o.stop()
	}
	time.Sleep(2 * time.Second)

	t.Log("Redis killed: Halt scales the engine to zero, Alert keeps it")
	start = time.Now()
	t.Logf("killing Redis at %s", time.Now().UTC().Format(time.RFC3339Nano))
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 90*time.Second, "live-halt Halted with its engine at zero", func() error {
		s, err := getStrategy(ns, "live-halt")
		if err != nil {
			return err
		}
		if s.Status.Phase != stratopsv1.PhaseHalted {
			return fmt.Errorf("phase %s", s.Status.Phase)
		}
		d, err := deployment(ns, "live-halt-engine")
		if err != nil {
			return err
		}
		if d.Spec.Replicas == nil || *d.Spec.Replicas != 0 {
			return fmt.Errorf("engine replicas %v", d.Spec.Replicas)
		}
		pods, err := strategyPods(ns, "live-halt", "engine")
		if err != nil {
			return err
		}
		if len(pods) != 0 {
			return fmt.Errorf("%d engine pods still exist", len(pods))
		}
		for _, reason := range []string{stratopsv1.ReasonRedisLost, stratopsv1.ReasonEngineHalted} {
			if ok, err := hasEvent(ns, "live-halt", corev1.EventTypeWarning, reason); err != nil || !ok {
				return fmt.Errorf("no Warning event %s (err %v)", reason, err)
			}
		}
		return nil
	})
	eventually(t, 60*time.Second, "live-alert Degraded with its engine kept", func() error {
		s, err := getStrategy(ns, "live-alert")
		if err != nil {
			return err
		}
		if s.Status.Phase != stratopsv1.PhaseDegraded {
			return fmt.Errorf("phase %s", s.Status.Phase)
		}
		pods, err := strategyPods(ns, "live-alert", "engine")
		if err != nil {
			return err
		}
		if len(pods) != 1 || pods[0].Status.Phase != corev1.PodRunning {
			return fmt.Errorf("engine pods: %d", len(pods))
		}
		if ok, err := hasEvent(ns, "live-alert", corev1.EventTypeWarning, stratopsv1.ReasonRedisLost); err != nil || !ok {
			return fmt.Errorf("no Warning event %s (err %v)", stratopsv1.ReasonRedisLost, err)
		}
		return nil
	})
	timings["live: Halted and Degraded after kill"] = time.Since(start)

	t.Log("Redis restarted: both recover on their own")
	start = time.Now()
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Redis restarted at %s", time.Now().UTC().Format(time.RFC3339Nano))
	for name := range policies {
		eventually(t, 120*time.Second, name+" Running again with its engine", func() error {
			s, err := getStrategy(ns, name)
			if err != nil {
				return err
			}
			if s.Status.Phase != stratopsv1.PhaseRunning {
				return fmt.Errorf("phase %s", s.Status.Phase)
			}
			if c := condition(s, stratopsv1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
				return fmt.Errorf("not Ready: %+v", c)
			}
			pods, err := strategyPods(ns, name, "engine")
			if err != nil {
				return err
			}
			return runningReady(pods, 1)
		})
	}
	timings["live: recovered after restart"] = time.Since(start)
	// Watch again once each logger writes again: an engine kept running
	// (Alert) may publish in the instant between Redis coming back and its
	// logger resubscribing, which pub/sub keeps for no one. (A halted
	// engine resumes only once its logger is available again.)
	for name := range policies {
		n1 := historyLen(t, rdb, name+":")
		eventually(t, 30*time.Second, name+" logging again", func() error {
			if n2 := historyLen(t, rdb, name+":"); n2 <= n1 {
				return fmt.Errorf("events:history stays at %d", n2)
			}
			return nil
		})
		observers[name] = observe(t, rdb, name+":")
	}
	time.Sleep(5 * time.Second)
	for name, o := range observers {
		for k, n := range o.stop() {
			seen[name][k] += n
		}
	}
	for name := range policies {
		eventually(t, 30*time.Second, name+": every published event in events:history exactly once", func() error {
			byMsg, byID, err := history(ctx, rdb, name+":")
			if err != nil {
				return err
			}
			for id, n := range byID {
				if n > 1 {
					return fmt.Errorf("entry id %s is in events:history %d times", id, n)
				}
			}
			for m, n := range byMsg {
				if n > 1 {
					return fmt.Errorf("event %s is in events:history %d times", m, n)
				}
			}
			var missing []string
			for m := range seen[name] {
				if byMsg[m] == 0 {
					missing = append(missing, m)
				}
			}
			if len(missing) > 0 {
				sort.Strings(missing)
				return fmt.Errorf("%d of %d published events are not in events:history:\n%s", len(missing), len(seen[name]), strings.Join(missing, "\n"))
			}
			if len(seen[name]) < 20 {
				return fmt.Errorf("only %d events were seen published", len(seen[name]))
			}
			t.Logf("%s: %d published events seen, all in events:history (%d entries), none twice", name, len(seen[name]), len(byMsg))
			return nil
		})
	}

	// The password never shows: not in status, events, ConfigMaps, the
	// workloads (they reference the Secret) or any log.
	for _, args := range [][]string{
		{"-n", ns, "get", "strategies,configmaps,events,deployments,replicasets,pods", "-o", "yaml"},
		{"-n", operatorNS, "logs", "-l", "app.kubernetes.io/component=manager", "--tail=-1"},
		{"-n", ns, "logs", "-l", "app.kubernetes.io/component=event-logger", "--tail=-1"},
		{"-n", ns, "logs", "-l", "app.kubernetes.io/component=engine", "--tail=-1"},
	} {
		out, err := kubectl(args...)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out, redisPassword) {
			t.Errorf("the Redis password appears in kubectl %s", strings.Join(args, " "))
		}
	}
}

func full(summary string) bool {
	var a, b int
	if _, err := fmt.Sscanf(summary, "%d/%d", &a, &b); err != nil {
		return false
	}
	return b > 0 && a == b
}

func historyLen(t *testing.T, rdb *redis.Client, prefix string) int64 {
	t.Helper()
	n, err := rdb.XLen(context.Background(), prefix+"events:history").Result()
	if err != nil && err != redis.Nil {
		t.Fatalf("XLEN events:history: %v", err)
	}
	return n
}

// TestManagerFailover deletes the leading manager pod mid-run: the other
// replica takes over, no child is duplicated, and the status goes on.
func TestManagerFailover(t *testing.T) {
	timed(t)
	managerLogsOnFailure(t)
	ctx := context.Background()
	ns := namespace(t, "e2e-failover")
	srv := hostRedis(t)
	s := &stratopsv1.Strategy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "failover"},
		Spec: stratopsv1.StrategySpec{
			Mode: stratopsv1.ModeLive,
			Redis: &stratopsv1.RedisSpec{Address: srv.Addr, KeyPrefix: "failover:",
				HealthCheckInterval: &metav1.Duration{Duration: 3 * time.Second}},
			Engine: sampleEngine(),
		},
	}
	if err := k8s.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	if out, err := kubectl("-n", ns, "wait", "--for=condition=Ready", "strategy/failover", "--timeout=180s"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	before := children(t, ns)

	leader := leaderPod(t)
	t.Logf("deleting the leader %s", leader)
	start := time.Now()
	if err := k8s.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: operatorNS, Name: leader}}); err != nil {
		t.Fatal(err)
	}
	// While the lease changes hands, the Strategy stays Ready.
	var newLeader string
	eventually(t, 120*time.Second, "another manager leads", func() error {
		got, err := getStrategy(ns, "failover")
		if err != nil {
			return err
		}
		if c := condition(got, stratopsv1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
			t.Fatalf("the Strategy left Ready during the failover: %+v", c)
		}
		newLeader = leaderPodOrEmpty()
		if newLeader == "" || newLeader == leader {
			return fmt.Errorf("leader is still %q", newLeader)
		}
		return nil
	})
	timings["failover: new leader"] = time.Since(start)
	t.Logf("new leader %s after %s", newLeader, time.Since(start).Round(time.Second))

	// The new leader reconciles: it probes Redis again and reports it. Its
	// first probe round is written at once (a new leader has written
	// nothing yet; after that, probe times alone are refreshed every
	// --status-refresh-interval), so it may come before the lease change
	// was seen here: it counts from the deletion of the old leader, to the
	// second (status times are written to the second).
	takeover := start.Truncate(time.Second)
	eventually(t, 60*time.Second, "the new leader probes Redis and reports it", func() error {
		s, err := getStrategy(ns, "failover")
		if err != nil {
			return err
		}
		if s.Status.Redis == nil || s.Status.Redis.LastProbeTime == nil || s.Status.Redis.LastProbeTime.Time.Before(takeover) {
			return fmt.Errorf("no probe since the takeover at %s", takeover.Format(time.RFC3339))
		}
		if c := condition(s, stratopsv1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("not Ready: %+v", c)
		}
		if s.Status.ObservedGeneration != s.Generation {
			return fmt.Errorf("observedGeneration %d of %d", s.Status.ObservedGeneration, s.Generation)
		}
		return nil
	})
	timings["failover: reconciling again"] = time.Since(start)
	if out, err := kubectl("-n", operatorNS, "rollout", "status", "deployment/"+managerApp, "--timeout=120s"); err != nil {
		t.Fatalf("the manager Deployment did not get back to full strength: %v\n%s", err, out)
	}
	after := children(t, ns)
	if before != after {
		t.Fatalf("children changed across the failover:\nbefore %s\nafter  %s", before, after)
	}
	pods, err := strategyPods(ns, "failover", "engine")
	if err != nil {
		t.Fatal(err)
	}
	if err := runningReady(pods, 1); err != nil {
		t.Fatalf("engine after failover: %v", err)
	}
}

// children summarizes what stratops made in a namespace, with uids, so
// that a duplicate or a re-created child shows.
func children(t *testing.T, ns string) string {
	t.Helper()
	out, err := kubectl("-n", ns, "get", "deployments,replicasets,services,configmaps,serviceaccounts,jobs",
		"-l", "app.kubernetes.io/managed-by=stratops", "-o", "custom-columns=KIND:.kind,NAME:.metadata.name,UID:.metadata.uid", "--no-headers")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(strings.Fields(out), " ")
}

func leaderPodOrEmpty() string {
	out, err := kubectl("-n", operatorNS, "get", "leases", "-o", "jsonpath={range .items[*]}{.spec.holderIdentity}{\"\\n\"}{end}")
	if err != nil {
		return ""
	}
	for _, id := range strings.Fields(out) {
		// controller-runtime's identity is <pod name>_<uuid>.
		// A holder being deleted (or gone) leads no more.
		if name, _, ok := strings.Cut(id, "_"); ok && strings.HasPrefix(name, managerApp) {
			var p corev1.Pod
			if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: operatorNS, Name: name}, &p); err == nil && p.DeletionTimestamp == nil {
				return name
			}
			return ""
		}
	}
	return ""
}

func leaderPod(t *testing.T) string {
	t.Helper()
	var name string
	eventually(t, 60*time.Second, "a manager leads", func() error {
		if name = leaderPodOrEmpty(); name == "" {
			return fmt.Errorf("no lease holder among the manager pods")
		}
		return nil
	})
	return name
}
