package controllers

import (
	"context"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/eventlog"
	"github.com/stratops/stratops/internal/redisprobe"
	"github.com/stratops/stratops/internal/redistest"
	"github.com/stratops/stratops/pkg/messaging"
)

// TestPrefix_ASecondStrategyOnTheSamePrefixIsStalledBeforeAnythingRollsOut:
// one Strategy owns a Redis, database and prefix, across namespaces.
func TestPrefix_ASecondStrategyOnTheSamePrefixIsStalledBeforeAnythingRollsOut(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	srv := startRedis(t)
	nsA, nsB := newNamespace(t), newNamespace(t)
	runningLive(g, nsA, "shared", srv.Addr, nil)
	owner := getStrategy(g, nsA, "shared")
	c := redistest.Client(t, srv.Addr)
	g.Expect(c.HGet(ctx, "shared:"+messaging.KeyChannelStats, eventlog.StatsOwnerField).Val()).To(Equal(string(owner.UID)),
		"the stats hash carries its owner")
	g.Expect(c.TTL(ctx, "shared:"+redisprobe.OwnerKey).Val()).To(BeNumerically(">", 0), "the claim expires unless renewed")

	second := liveOn(nsB, "shared", srv.Addr, stratv1.RedisLossHalt)
	g.Expect(k8sClient.Create(ctx, second)).To(Succeed())
	g.Eventually(func(g Gomega) {
		s := getStrategy(g, nsB, "shared")
		st := condition(s, stratv1.ConditionStalled)
		g.Expect(st).NotTo(BeNil())
		g.Expect(st.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(st.Reason).To(Equal(stratv1.ReasonPrefixConflict))
		g.Expect(st.Message).To(ContainSubstring("spec.redis.keyPrefix \"shared:\""))
		g.Expect(st.Message).To(ContainSubstring(nsA + "/shared"))
		g.Expect(hasEvent(g, nsB, "shared", corev1.EventTypeWarning, stratv1.ReasonPrefixConflict)).To(BeTrue())
	}, timeout, interval).Should(Succeed())
	g.Expect(notFound(nsB, "shared-eventlogger", &appsv1.Deployment{})).To(BeTrue(), "nothing of the second rolls out")
	// The owner runs on, its stats its own.
	g.Consistently(func(g Gomega) {
		g.Expect(getStrategy(g, nsA, "shared").Status.Phase).To(Equal(stratv1.PhaseRunning))
	}, 2*time.Second, interval).Should(Succeed())
	g.Expect(c.HGet(ctx, "shared:"+messaging.KeyChannelStats, eventlog.StatsOwnerField).Val()).To(Equal(string(owner.UID)))
}

// TestStatus_AGapInTheLoggersSubscriptionShowsAsPossibleLoss: the gaps the
// logger counts reach status.channels, and ChannelsHealthy says
// "possible loss" while the gap is recent.
func TestStatus_AGapInTheLoggersSubscriptionShowsAsPossibleLoss(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	srv := startRedis(t)
	runningLive(g, ns, "gappy", srv.Addr, nil)
	bus := eventlog.NewRedisStore(redistest.Client(t, srv.Addr), eventlog.RedisStoreOptions{KeyPrefix: "gappy:"})
	end := time.Now().UTC()
	g.Expect(bus.WriteStats(ctx, eventlog.StatsUpdate{Counters: map[string]eventlog.ChannelStats{
		"position:updated": {Gaps: 1, LastGapTime: end, Dropped: 3},
		"risk:calculated":  {Gaps: 1, LastGapTime: end},
	}})).To(Succeed())
	g.Eventually(func(g Gomega) {
		s := getStrategy(g, ns, "gappy")
		var ch *stratv1.ChannelStatus
		for i := range s.Status.Channels {
			if s.Status.Channels[i].Name == "position:updated" {
				ch = &s.Status.Channels[i]
			}
		}
		g.Expect(ch).NotTo(BeNil())
		g.Expect(ch.Gaps).To(Equal(int64(1)))
		g.Expect(ch.DroppedMessages).To(Equal(int64(3)))
		g.Expect(ch.LastGapTime).NotTo(BeNil())
		c := condition(s, stratv1.ConditionChannelsHealthy)
		g.Expect(c.Message).To(ContainSubstring("possible loss"))
		g.Expect(c.Message).To(ContainSubstring("on 2 channels"))
	}, timeout, interval).Should(Succeed())
}

// TestEventLogger_ReplicasGetABudgetASpreadAndTheLeaderInStatus: several
// logger replicas get a PodDisruptionBudget (one down at a time) and are
// spread across nodes; the replica holding the lease is in status; back to
// one replica, the budget goes.
func TestEventLogger_ReplicasGetABudgetASpreadAndTheLeaderInStatus(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	srv := startRedis(t)
	runningLive(g, ns, "ha", srv.Addr, func(s *stratv1.Strategy) { s.Spec.EventLogger.Replicas = ptr.To[int32](2) })
	key := client.ObjectKey{Namespace: ns, Name: "ha-eventlogger"}
	pdb := &policyv1.PodDisruptionBudget{}
	g.Eventually(func() error { return k8sClient.Get(ctx, key, pdb) }, timeout, interval).Should(Succeed())
	g.Expect(pdb.Spec.MaxUnavailable.IntValue()).To(Equal(1))
	d := &appsv1.Deployment{}
	g.Expect(k8sClient.Get(ctx, key, d)).To(Succeed())
	spread := d.Spec.Template.Spec.TopologySpreadConstraints
	g.Expect(spread).To(HaveLen(1))
	g.Expect(spread[0].TopologyKey).To(Equal(corev1.LabelHostname))
	env := map[string]*corev1.EnvVar{}
	for i, e := range d.Spec.Template.Spec.Containers[0].Env {
		env[e.Name] = &d.Spec.Template.Spec.Containers[0].Env[i]
	}
	g.Expect(env).To(HaveKey("STRATOPS_POD_NAME"))
	g.Expect(env["STRATOPS_POD_NAME"].ValueFrom.FieldRef.FieldPath).To(Equal("metadata.name"))
	g.Expect(env).To(HaveKey("STRATOPS_SPOOL_DIR"))

	// The lease as a logger replica holds it.
	c := redistest.Client(t, srv.Addr)
	g.Expect(c.Set(ctx, eventlog.LeaseKey("ha:"), "0123abcd|ha-eventlogger-7c9f-x2x4q", time.Minute).Err()).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(getStrategy(g, ns, "ha").Status.EventLogger.Leader).To(Equal("ha-eventlogger-7c9f-x2x4q"))
	}, timeout, interval).Should(Succeed())

	updateStrategy(g, ns, "ha", func(s *stratv1.Strategy) { s.Spec.EventLogger.Replicas = ptr.To[int32](1) })
	g.Eventually(func() bool { return notFound(ns, "ha-eventlogger", &policyv1.PodDisruptionBudget{}) }, timeout, interval).Should(BeTrue())
}

// TestEventLogger_ABacktestOnMemoryIsNotHeldByARedisThatRefusesItsWrites:
// a backtest whose Redis user may not XADD runs on the in-memory bus; its
// logger writes nothing to Redis, so Redis's refusal does not make it not
// ready.
func TestEventLogger_ABacktestOnMemoryIsNotHeldByARedisThatRefusesItsWrites(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	createSecret(t, ns, "right", testPassword)
	s := backtest(ns, "narrowbt")
	s.Spec.Redis = &stratv1.RedisSpec{Address: redisAuth.Addr, Username: "nostream", KeyPrefix: "narrowbt:",
		PasswordSecretRef: &stratv1.SecretKeySelector{Name: "right", Key: "password"}}
	g.Expect(k8sClient.Create(ctx, s)).To(Succeed())
	g.Eventually(func() error {
		return k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "narrowbt-eventlogger"}, &appsv1.Deployment{})
	}, timeout, interval).Should(Succeed())
	markAvailable(g, ns, "narrowbt-eventlogger")
	g.Eventually(func(g Gomega) {
		s := getStrategy(g, ns, "narrowbt")
		g.Expect(s.Status.Redis).NotTo(BeNil())
		g.Expect(s.Status.Redis.InMemoryFallback).To(BeTrue())
		c := condition(s, stratv1.ConditionEventLoggerReady)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(metav1.ConditionTrue), "%s: %s", c.Reason, c.Message)
		g.Expect(condition(s, stratv1.ConditionReady).Status).To(Equal(metav1.ConditionTrue))
	}, timeout, interval).Should(Succeed())
}

// TestUpgrade_ARunningLiveEngineIsNotHaltedWhenRedisRefusesOnlyTheLoggersCommands:
// a Live strategy runs; then its Redis user loses XADD (as a user made for
// an earlier release, before the logger needed more, would lack the new
// commands). Rounds keep failing the commands probe, but Redis answers:
// the engine is not halted; EventLoggerReady says what the logger lacks.
func TestUpgrade_ARunningLiveEngineIsNotHaltedWhenRedisRefusesOnlyTheLoggersCommands(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	srv := startRedis(t)
	admin := redistest.Client(t, srv.Addr)
	g.Expect(admin.Do(ctx, "ACL", "SETUSER", "trader", "on", ">"+testPassword, "~*", "&*", "+@all").Err()).To(Succeed())
	createSecret(t, ns, "right", testPassword)
	runningLive(g, ns, "narrowed", srv.Addr, func(s *stratv1.Strategy) {
		s.Spec.Redis.Username = "trader"
		s.Spec.Redis.PasswordSecretRef = &stratv1.SecretKeySelector{Name: "right", Key: "password"}
		s.Spec.Engine = liveEngine()
	})
	g.Expect(admin.Do(ctx, "ACL", "SETUSER", "trader", "-xadd").Err()).To(Succeed())
	g.Eventually(func(g Gomega) {
		c := condition(getStrategy(g, ns, "narrowed"), stratv1.ConditionEventLoggerReady)
		g.Expect(c.Reason).To(Equal(stratv1.ReasonRedisPermissionDenied))
		g.Expect(strings.ToLower(c.Message)).To(ContainSubstring("xadd"))
	}, timeout, interval).Should(Succeed())
	// Many rounds at a 1 s interval: never lost, never halted.
	g.Consistently(func(g Gomega) {
		s := getStrategy(g, ns, "narrowed")
		g.Expect(s.Status.Phase).NotTo(Equal(stratv1.PhaseHalted))
		g.Expect(condition(s, stratv1.ConditionRedisReady).Status).To(Equal(metav1.ConditionTrue))
	}, 6*time.Second, 200*time.Millisecond).Should(Succeed())
	d := &appsv1.Deployment{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "narrowed-engine"}, d)).To(Succeed())
	g.Expect(*d.Spec.Replicas).To(Equal(int32(1)), "the engine keeps running")
}
