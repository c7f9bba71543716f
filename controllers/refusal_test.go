package controllers

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stratv1 "github.com/stratops/stratops/api/v1"
)

const podSecurityRefusal = `pods "x-engine-5d9f-abcde" is forbidden: violates PodSecurity "restricted:latest": runAsNonRoot != true`

// TestRefusal_ATemplateTheAPIServerRefusesStallsWithItsMessage: a volume
// named like the operator's own makes a Deployment the API server refuses
// (422). The Strategy is Stalled, InvalidEngineTemplate, with the server's
// words, once, instead of retried with a Warning each time; a fixed
// template brings the engine.
func TestRefusal_ATemplateTheAPIServerRefusesStallsWithItsMessage(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	s := liveOn(ns, "dup", redisOpen.Addr, stratv1.RedisLossHalt)
	s.Spec.Engine.Template.Spec.Volumes = []corev1.Volume{{Name: "catalog", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	g.Expect(k8sClient.Create(ctx, s)).To(Succeed())
	g.Eventually(func() error {
		return k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "dup-eventlogger"}, &appsv1.Deployment{})
	}, timeout, interval).Should(Succeed())
	markAvailable(g, ns, "dup-eventlogger")
	g.Eventually(func(g Gomega) {
		s := getStrategy(g, ns, "dup")
		c := condition(s, stratv1.ConditionReady)
		// The Deployment is made mid-reconcile; the status comes at its end.
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Reason).To(Equal(stratv1.ReasonInvalidEngineTemplate))
		g.Expect(c.Message).To(ContainSubstring("spec.engine.template"))
		g.Expect(c.Message).To(ContainSubstring(`volumes: duplicate entries for key [name="catalog"]`), "the API server's own words")
		g.Expect(kstatusOf(g, s)).To(Equal(kstatus.FailedStatus))
	}, timeout, interval).Should(Succeed())
	// Not retried: one Warning, however long it stays.
	time.Sleep(3 * time.Second)
	warnings := 0
	for _, e := range eventsFor(g, ns, "dup") {
		if e.Type == corev1.EventTypeWarning && e.Reason == stratv1.ReasonInvalidEngineTemplate {
			warnings++
			g.Expect(ptr.Deref(e.Series, eventsv1.EventSeries{Count: 1}).Count).To(BeNumerically("<=", 1), "not repeated")
		}
	}
	g.Expect(warnings).To(Equal(1))

	updateStrategy(g, ns, "dup", func(s *stratv1.Strategy) { s.Spec.Engine.Template.Spec.Volumes[0].Name = "scratch" })
	g.Eventually(func() error {
		return k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "dup-engine"}, &appsv1.Deployment{})
	}, timeout, interval).Should(Succeed())
}

// TestRefusal_PodsThatAdmissionRejectsShowAsPodsRejected: when the
// deployment controller reports ReplicaFailure (Pod Security admission
// refused the engine's pods), EngineReady says so with the refusal,
// instead of "0/1 available" forever.
func TestRefusal_PodsThatAdmissionRejectsShowAsPodsRejected(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	runningLive(g, ns, "psa", redisOpen.Addr, func(s *stratv1.Strategy) {
		s.Spec.Engine = liveEngine()
	})
	d := &appsv1.Deployment{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "psa-engine"}, d)).To(Succeed())
	d.Status.AvailableReplicas, d.Status.ReadyReplicas = 0, 0
	d.Status.Conditions = append(d.Status.Conditions, appsv1.DeploymentCondition{
		Type: appsv1.DeploymentReplicaFailure, Status: corev1.ConditionTrue, Reason: "FailedCreate", Message: podSecurityRefusal,
	})
	g.Expect(k8sClient.Status().Update(ctx, d)).To(Succeed())
	g.Eventually(func(g Gomega) {
		c := condition(getStrategy(g, ns, "psa"), stratv1.ConditionEngineReady)
		g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(c.Reason).To(Equal(stratv1.ReasonPodsRejected))
		g.Expect(c.Message).To(ContainSubstring(podSecurityRefusal))
	}, timeout, interval).Should(Succeed())
}

// TestRefusal_ABacktestPodThatAdmissionRejectsShowsAsPodsRejected: the job
// controller says so only in a FailedCreate event of the Job.
func TestRefusal_ABacktestPodThatAdmissionRejectsShowsAsPodsRejected(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	runningBacktest(g, ns, "btpsa", func(s *stratv1.Strategy) {
		s.Spec.Redis.HealthCheckInterval = &metav1.Duration{Duration: time.Second}
	})
	var job *batchv1.Job
	g.Eventually(func(g Gomega) { job = backtestJob(g, ns, "btpsa") }, timeout, interval).Should(Succeed())
	now := metav1.Now()
	g.Expect(k8sClient.Create(ctx, &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Namespace: ns, Name: "btpsa-engine.failedcreate"},
		InvolvedObject: corev1.ObjectReference{Kind: "Job", APIVersion: "batch/v1", Namespace: ns, Name: job.Name, UID: job.UID},
		Reason:         "FailedCreate", Message: "Error creating: " + podSecurityRefusal, Type: corev1.EventTypeWarning,
		Source: corev1.EventSource{Component: "job-controller"}, FirstTimestamp: now, LastTimestamp: now, Count: 1,
	})).To(Succeed())
	g.Eventually(func(g Gomega) {
		c := condition(getStrategy(g, ns, "btpsa"), stratv1.ConditionEngineReady)
		g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(c.Reason).To(Equal(stratv1.ReasonPodsRejected))
		g.Expect(c.Message).To(ContainSubstring(podSecurityRefusal))
	}, timeout, interval).Should(Succeed())
}
