package controllers

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stratv1 "github.com/stratops/stratops/api/v1"
)

// TestRemoval_DroppingTheEngineStopsThenDeletesIt: a Live engine whose
// spec.engine is removed is scaled to zero with a Warning first, and
// deleted only once its pods have ended; under updateStrategy Auto and
// Manual alike (removal is deliberate: Manual holds revisions, not this).
func TestRemoval_DroppingTheEngineStopsThenDeletesIt(t *testing.T) {
	for _, strategy := range []stratv1.UpdateStrategy{stratv1.UpdateAuto, stratv1.UpdateManual} {
		t.Run(string(strategy), func(t *testing.T) { testRemoval(t, strategy) })
	}
}

func testRemoval(t *testing.T, strategy stratv1.UpdateStrategy) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	runningLive(g, ns, "rm", redisOpen.Addr, func(s *stratv1.Strategy) {
		s.Spec.Redis.KeyPrefix = ns + "-rm:"
		s.Spec.Engine = liveEngine()
		s.Spec.Engine.UpdateStrategy = strategy
	})
	key := client.ObjectKey{Namespace: ns, Name: "rm-engine"}
	updateStrategy(g, ns, "rm", func(s *stratv1.Strategy) { s.Spec.Engine = nil })

	g.Eventually(func(g Gomega) {
		d := &appsv1.Deployment{}
		g.Expect(k8sClient.Get(ctx, key, d)).To(Succeed())
		g.Expect(*d.Spec.Replicas).To(BeZero())
		g.Expect(hasEvent(g, ns, "rm", corev1.EventTypeWarning, "EngineRemoving")).To(BeTrue())
		g.Expect(condition(getStrategy(g, ns, "rm"), stratv1.ConditionEngineReady).Reason).To(Equal(stratv1.ReasonEngineRemoving))
	}, timeout, interval).Should(Succeed())

	// Its pod is still terminating: the Deployment stays.
	d := &appsv1.Deployment{}
	g.Expect(k8sClient.Get(ctx, key, d)).To(Succeed())
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: 0, TerminatingReplicas: ptr.To[int32](1)}
	g.Expect(k8sClient.Status().Update(ctx, d)).To(Succeed())
	g.Consistently(func() error { return k8sClient.Get(ctx, key, &appsv1.Deployment{}) }, 2*time.Second, 200*time.Millisecond).
		Should(Succeed(), "not deleted while its pod terminates")

	// The pod ended: deleted.
	g.Expect(k8sClient.Get(ctx, key, d)).To(Succeed())
	d.Status.TerminatingReplicas = ptr.To[int32](0)
	g.Expect(k8sClient.Status().Update(ctx, d)).To(Succeed())
	g.Eventually(func() bool { return notFound(ns, "rm-engine", &appsv1.Deployment{}) }, timeout, interval).Should(BeTrue())
	markAvailable(g, ns, "rm-eventlogger") // a new generation of the logger Deployment to observe
	g.Eventually(func(g Gomega) {
		s := getStrategy(g, ns, "rm")
		g.Expect(condition(s, stratv1.ConditionEngineReady)).To(BeNil())
		g.Expect(s.Status.Engine).To(BeNil())
		g.Expect(s.Status.Phase).To(Equal(stratv1.PhaseRunning), "%+v", s.Status.Conditions)
		g.Expect(hasEvent(g, ns, "rm", corev1.EventTypeNormal, "EngineRemoved")).To(BeTrue())
	}, timeout, interval).Should(Succeed())
}

// TestRemoval_ABacktestJobIsDeletedAndWhatIsNotOursIsNeverTouched: a
// backtest's Job goes with its spec.engine; a Deployment of the engine's
// name that the Strategy does not own stays.
func TestRemoval_ABacktestJobIsDeletedAndWhatIsNotOursIsNeverTouched(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	runningBacktest(g, ns, "bt", nil)
	g.Eventually(func(g Gomega) { backtestJob(g, ns, "bt") }, timeout, interval).Should(Succeed())

	// Someone else's Deployment under the engine's name.
	foreign := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bt-engine"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "theirs"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "theirs"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "theirs:1"}}},
			},
		},
	}
	g.Expect(k8sClient.Create(ctx, foreign)).To(Succeed())

	updateStrategy(g, ns, "bt", func(s *stratv1.Strategy) { s.Spec.Engine = nil })
	g.Eventually(func(g Gomega) { g.Expect(backtestJobs(g, ns, "bt")).To(BeEmpty()) }, timeout, interval).Should(Succeed())
	g.Expect(hasEvent(g, ns, "bt", corev1.EventTypeWarning, "EngineRemoved")).To(BeTrue())
	g.Consistently(func() error {
		return k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "bt-engine"}, &appsv1.Deployment{})
	}, 2*time.Second, 200*time.Millisecond).Should(Succeed(), "a Deployment the Strategy does not own is never deleted")
}

// TestStopped_TheEngineStopsOnPurposeAndADrainWaits: spec.engine.stopped
// scales the Live engine to zero on purpose: phase Halted, Ready (it runs
// as declared), kstatus Current; false starts it again. Its
// PodDisruptionBudget admits no eviction, so a node drain waits for a
// human; it goes with the engine.
func TestStopped_TheEngineStopsOnPurposeAndADrainWaits(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	runningLive(g, ns, "stop", redisOpen.Addr, func(s *stratv1.Strategy) {
		s.Spec.Engine = liveEngine()
	})
	key := client.ObjectKey{Namespace: ns, Name: "stop-engine"}
	pdb := &policyv1.PodDisruptionBudget{}
	g.Eventually(func() error { return k8sClient.Get(ctx, key, pdb) }, timeout, interval).Should(Succeed())
	g.Expect(metav1.IsControlledBy(pdb, getStrategy(g, ns, "stop"))).To(BeTrue())
	g.Expect(pdb.Spec.MaxUnavailable.IntValue()).To(BeZero())
	g.Expect(pdb.Spec.Selector.MatchLabels).To(HaveKeyWithValue("app.kubernetes.io/component", "engine"))

	updateStrategy(g, ns, "stop", func(s *stratv1.Strategy) { s.Spec.Engine.Stopped = true })
	g.Eventually(func(g Gomega) {
		d := &appsv1.Deployment{}
		g.Expect(k8sClient.Get(ctx, key, d)).To(Succeed())
		g.Expect(*d.Spec.Replicas).To(BeZero())
	}, timeout, interval).Should(Succeed())
	markAvailable(g, ns, "stop-engine")
	markAvailable(g, ns, "stop-eventlogger")
	g.Eventually(func(g Gomega) {
		s := getStrategy(g, ns, "stop")
		g.Expect(s.Status.Phase).To(Equal(stratv1.PhaseHalted))
		g.Expect(condition(s, stratv1.ConditionReady).Status).To(Equal(metav1.ConditionTrue))
		g.Expect(condition(s, stratv1.ConditionReady).Reason).To(Equal(stratv1.ReasonStopped))
		g.Expect(condition(s, stratv1.ConditionEngineReady).Reason).To(Equal(stratv1.ReasonStopped))
		g.Expect(kstatusOf(g, s)).To(Equal(kstatus.CurrentStatus))
		g.Expect(hasEvent(g, ns, "stop", corev1.EventTypeNormal, "EngineStopped")).To(BeTrue())
	}, timeout, interval).Should(Succeed())

	updateStrategy(g, ns, "stop", func(s *stratv1.Strategy) { s.Spec.Engine.Stopped = false })
	g.Eventually(func(g Gomega) {
		d := &appsv1.Deployment{}
		g.Expect(k8sClient.Get(ctx, key, d)).To(Succeed())
		g.Expect(*d.Spec.Replicas).To(Equal(int32(1)))
		g.Expect(hasEvent(g, ns, "stop", corev1.EventTypeNormal, "EngineStarted")).To(BeTrue())
	}, timeout, interval).Should(Succeed())

	// Removed with the engine.
	updateStrategy(g, ns, "stop", func(s *stratv1.Strategy) { s.Spec.Engine = nil })
	g.Eventually(func(g Gomega) {
		d := &appsv1.Deployment{}
		g.Expect(k8sClient.Get(ctx, key, d)).To(Succeed())
		g.Expect(*d.Spec.Replicas).To(BeZero())
	}, timeout, interval).Should(Succeed())
	markAvailable(g, ns, "stop-engine")
	g.Eventually(func() bool { return notFound(ns, "stop-engine", &policyv1.PodDisruptionBudget{}) }, timeout, interval).Should(BeTrue())
	g.Eventually(func() bool { return notFound(ns, "stop-engine", &appsv1.Deployment{}) }, timeout, interval).Should(BeTrue())
}
