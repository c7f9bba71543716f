package controllers

import (
	"context"
	"sort"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/pkg/messaging"
)

func engineSpec() *stratv1.EngineSpec {
	return &stratv1.EngineSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Name: "engine", Image: "engine:1",
			Env:            []corev1.EnvVar{{Name: "OWN", Value: "kept"}},
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}}}},
	}}}
}

// backtestJobs are a Strategy's backtest Jobs, newest first.
func backtestJobs(g Gomega, ns, name string) []batchv1.Job {
	var list batchv1.JobList
	g.Expect(k8sClient.List(context.Background(), &list, client.InNamespace(ns),
		client.MatchingLabels{"app.kubernetes.io/instance": name, "app.kubernetes.io/component": "engine"})).To(Succeed())
	sort.Slice(list.Items, func(a, b int) bool {
		return list.Items[b].CreationTimestamp.Before(&list.Items[a].CreationTimestamp) ||
			list.Items[a].CreationTimestamp.Equal(&list.Items[b].CreationTimestamp) && list.Items[a].Name > list.Items[b].Name
	})
	return list.Items
}

// backtestJob is a Strategy's one backtest Job.
func backtestJob(g Gomega, ns, name string) *batchv1.Job {
	jobs := backtestJobs(g, ns, name)
	g.Expect(jobs).To(HaveLen(1))
	return &jobs[0]
}

func setJobCondition(g Gomega, ns, name string, t batchv1.JobConditionType) {
	j := &batchv1.Job{}
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, j)).To(Succeed())
	now := metav1.Now()
	j.Status.StartTime = &now
	j.Status.Conditions = append(j.Status.Conditions, batchv1.JobCondition{Type: t, Status: corev1.ConditionTrue, Reason: "Test", Message: "set by the test", LastTransitionTime: now})
	if t == batchv1.JobComplete {
		j.Status.CompletionTime = &now
		j.Status.Succeeded = 1
		j.Status.Conditions = append([]batchv1.JobCondition{{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, LastTransitionTime: now}}, j.Status.Conditions...)
	} else {
		j.Status.Failed = 1
		j.Status.Conditions = append([]batchv1.JobCondition{{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, LastTransitionTime: now}}, j.Status.Conditions...)
	}
	g.Expect(k8sClient.Status().Update(context.Background(), j)).To(Succeed())
}

func TestEngine_BacktestRunsAJobWiredLikeTheLoggerAndItsOutcomeIsThePhase(t *testing.T) {
	for _, outcome := range []batchv1.JobConditionType{batchv1.JobComplete, batchv1.JobFailed} {
		t.Run(string(outcome), func(t *testing.T) {
			g := NewWithT(t)
			ctx := context.Background()
			ns := newNamespace(t)
			s := backtest(ns, "bt")
			s.Spec.Redis = &stratv1.RedisSpec{Address: redisOpen.Addr, KeyPrefix: ns + "-bt:"}
			s.Spec.Engine = engineSpec()
			g.Expect(k8sClient.Create(ctx, s)).To(Succeed())
			// The engine waits for its event logger to listen.
			g.Eventually(func() error {
				return k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "bt-eventlogger"}, &appsv1.Deployment{})
			}, timeout, interval).Should(Succeed())
			g.Eventually(func(g Gomega) {
				s := getStrategy(g, ns, "bt")
				c := condition(s, stratv1.ConditionEngineReady)
				g.Expect(c).NotTo(BeNil())
				g.Expect(c.Reason).To(Equal(stratv1.ReasonWaitingForEventLogger))
			}, timeout, interval).Should(Succeed())
			g.Expect(backtestJobs(g, ns, "bt")).To(BeEmpty(), "no Job before the event logger is available")
			markAvailable(g, ns, "bt-eventlogger")
			var job *batchv1.Job
			g.Eventually(func(g Gomega) { job = backtestJob(g, ns, "bt") }, timeout, interval).Should(Succeed())
			g.Expect(job.Name).To(HavePrefix("bt-bt-"), "named for its revision")
			c := job.Spec.Template.Spec.Containers[0]
			env := map[string]string{}
			for _, e := range c.Env {
				env[e.Name] = e.Value
			}
			g.Expect(env).To(HaveKeyWithValue("OWN", "kept"))
			g.Expect(env).To(HaveKeyWithValue(messaging.EnvRedisAddrs, redisOpen.Addr))
			g.Expect(env).To(HaveKeyWithValue(messaging.EnvKeyPrefix, ns+"-bt:"))
			g.Expect(c.VolumeMounts).To(ContainElement(HaveField("MountPath", "/etc/stratops")))
			g.Expect(job.Spec.Template.Spec.RestartPolicy).To(Equal(corev1.RestartPolicyNever))

			markAvailable(g, ns, "bt-eventlogger")
			setJobCondition(g, ns, job.Name, outcome)
			g.Eventually(func(g Gomega) {
				s := getStrategy(g, ns, "bt")
				if outcome == batchv1.JobComplete {
					g.Expect(s.Status.Phase).To(Equal(stratv1.PhaseSucceeded))
					g.Expect(kstatusOf(g, s)).To(Equal(kstatus.CurrentStatus))
				} else {
					g.Expect(s.Status.Phase).To(Equal(stratv1.PhaseFailed))
					g.Expect(condition(s, stratv1.ConditionStalled).Reason).To(Equal("BacktestFailed"))
					g.Expect(kstatusOf(g, s)).To(Equal(kstatus.FailedStatus))
				}
			}, timeout, interval).Should(Succeed())
		})
	}
}

func TestEngine_LiveDeploymentRecreatesOnAChangeAndSaysSo(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	runningLive(g, ns, "eng", redisOpen.Addr, func(s *stratv1.Strategy) { s.Spec.Engine = engineSpec() })
	key := client.ObjectKey{Namespace: ns, Name: "eng-engine"}
	d := &appsv1.Deployment{}
	g.Expect(k8sClient.Get(ctx, key, d)).To(Succeed())
	g.Expect(d.Spec.Strategy.Type).To(Equal(appsv1.RecreateDeploymentStrategyType), "never two engines trading at once")
	g.Expect(*d.Spec.Template.Spec.Containers[0].ReadinessProbe).To(HaveField("SuccessThreshold", int32(1)))

	updateStrategy(g, ns, "eng", func(s *stratv1.Strategy) { s.Spec.Engine.Template.Spec.Containers[0].Image = "engine:2" })
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, key, d)).To(Succeed())
		g.Expect(d.Spec.Template.Spec.Containers[0].Image).To(Equal("engine:2"))
		g.Expect(hasEvent(g, ns, "eng", corev1.EventTypeWarning, "EngineRestarted")).To(BeTrue())
	}, timeout, interval).Should(Succeed())
}

// TestEngine_ABacktestRunsOnceForEachRevision: a spec change of a Backtest
// runs a new Job for the new revision and stops the one still running;
// status.backtests keeps the runs, newest first, and the phase is the
// newest one's. An unchanged spec never reruns.
func TestEngine_ABacktestRunsOnceForEachRevision(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	runningBacktest(g, ns, "bt", nil)
	var first *batchv1.Job
	g.Eventually(func(g Gomega) { first = backtestJob(g, ns, "bt") }, timeout, interval).Should(Succeed())

	updateStrategy(g, ns, "bt", func(s *stratv1.Strategy) { s.Spec.Engine.Template.Spec.Containers[0].Image = "engine:2" })
	markAvailable(g, ns, "bt-eventlogger")
	var second *batchv1.Job
	g.Eventually(func(g Gomega) {
		jobs := backtestJobs(g, ns, "bt")
		g.Expect(jobs).To(HaveLen(1), "the running Job of the old revision is stopped")
		second = &jobs[0]
		g.Expect(second.Name).NotTo(Equal(first.Name))
		g.Expect(second.Spec.Template.Spec.Containers[0].Image).To(Equal("engine:2"))
		g.Expect(hasEvent(g, ns, "bt", corev1.EventTypeWarning, "BacktestStopped")).To(BeTrue())
		runs := getStrategy(g, ns, "bt").Status.Backtests
		g.Expect(runs).To(HaveLen(2))
		g.Expect(runs[0].Job).To(Equal(second.Name))
		g.Expect(runs[0].Outcome).To(Equal(stratv1.BacktestRunning))
		g.Expect(runs[0].Revision).To(Equal(second.Spec.Template.Annotations["stratops.dev/revision"]))
		g.Expect(runs[1].Job).To(Equal(first.Name))
		g.Expect(runs[1].Outcome).To(Equal(stratv1.BacktestStopped))
		g.Expect(runs[1].CompletionTime).NotTo(BeNil())
	}, timeout, interval).Should(Succeed())

	markAvailable(g, ns, "bt-eventlogger") // its new generation
	setJobCondition(g, ns, second.Name, batchv1.JobComplete)
	g.Eventually(func(g Gomega) {
		s := getStrategy(g, ns, "bt")
		g.Expect(s.Status.Phase).To(Equal(stratv1.PhaseSucceeded), "%v", s.Status.Conditions)
		g.Expect(s.Status.Backtests[0].Outcome).To(Equal(stratv1.BacktestSucceeded))
	}, timeout, interval).Should(Succeed())
	// Reconciles of the same spec run nothing again.
	g.Consistently(func(g Gomega) { g.Expect(backtestJobs(g, ns, "bt")).To(HaveLen(1)) }, 2*time.Second, 200*time.Millisecond).Should(Succeed())
}

// TestEngine_TheTemplatesLabelsAndAnnotationsReachThePods: the CRD keeps
// the embedded template's metadata (not pruned as an opaque object), so
// what the user labels and annotates their pods with is what runs.
func TestEngine_TheTemplatesLabelsAndAnnotationsReachThePods(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	runningLive(g, ns, "meta", redisOpen.Addr, func(s *stratv1.Strategy) {
		s.Spec.Engine = liveEngine()
		s.Spec.Engine.Template.Labels = map[string]string{"desk": "a"}
		s.Spec.Engine.Template.Annotations = map[string]string{"prometheus.io/scrape": "true"}
	})
	stored := getStrategy(g, ns, "meta")
	g.Expect(stored.Spec.Engine.Template.Labels).To(HaveKeyWithValue("desk", "a"), "the API server kept the template's labels")
	g.Expect(stored.Spec.Engine.Template.Annotations).To(HaveKeyWithValue("prometheus.io/scrape", "true"))
	d := &appsv1.Deployment{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "meta-engine"}, d)).To(Succeed())
	g.Expect(d.Spec.Template.Labels).To(HaveKeyWithValue("desk", "a"))
	g.Expect(d.Spec.Template.Annotations).To(HaveKeyWithValue("prometheus.io/scrape", "true"))
}
