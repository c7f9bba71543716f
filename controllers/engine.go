package controllers

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/lifecycle"
)

// enginePodTemplate is the user's template with the strategy's wiring
// added to every container: the catalog mounted, the Redis connection in
// the environment (the password through a secretKeyRef), exactly as the
// event logger gets them.
func enginePodTemplate(s *stratv1.Strategy, w wiring, hash string) corev1.PodTemplateSpec {
	t := *s.Spec.Engine.Template.DeepCopy()
	labels := objectLabels(s, componentEngine)
	if t.Labels == nil {
		t.Labels = map[string]string{}
	}
	for k, v := range labels {
		t.Labels[k] = v
	}
	if t.Annotations == nil {
		t.Annotations = map[string]string{}
	}
	t.Annotations[annotationConfigHash] = hash
	for i := range t.Spec.Containers {
		c := &t.Spec.Containers[i]
		for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
			defaultProbe(p)
		}
		c.Env = append(append([]corev1.EnvVar(nil), w.env...), c.Env...)
		c.VolumeMounts = append(c.VolumeMounts, w.mounts...)
	}
	t.Spec.Volumes = append(t.Spec.Volumes, w.volumes...)
	return t
}

// reconcileEngine runs the strategy's own workload: a Job in Backtest, a
// Deployment in Live (only after the gate; scaled to zero while Redis is
// lost under policy Halt). An engine starts, or resumes after a Halt, only
// once an event logger replica is available: pub/sub keeps nothing for a
// subscriber that is not there yet, so what an engine published before its
// logger listened would never be logged.
func (r *StrategyReconciler) reconcileEngine(ctx context.Context, sc *scope) (ctrl.Result, error) {
	s := sc.strategy
	if s.Spec.Engine == nil {
		meta.RemoveStatusCondition(&s.Status.Conditions, stratv1.ConditionEngineReady)
		s.Status.Engine = nil
		return ctrl.Result{}, nil
	}
	if sc.redisState == lifecycle.RedisGated {
		lifecycle.SetCondition(s, stratv1.ConditionEngineReady, false, stratv1.ReasonGated, "The engine waits for Redis to pass its probes")
		return ctrl.Result{}, nil
	}
	env := podEnvFor(s, sc.redis != nil)
	if env.Redis == nil {
		// A backtest on the in-process bus forwards its events to the
		// logger, so that its audit trail is complete.
		env.EventLoggerURL = eventLoggerURL(s)
	}
	tmpl := enginePodTemplate(s, podWiring(env), sc.configHash)
	waitMsg := "The engine starts once an event logger replica is available, so that everything it publishes is logged"
	if s.Spec.Mode == stratv1.ModeBacktest {
		if !sc.loggerListening {
			job := &batchv1.Job{}
			if err := r.Get(ctx, client.ObjectKey{Namespace: s.Namespace, Name: engineName(s)}, job); apierrors.IsNotFound(err) {
				s.Status.Engine = &stratv1.WorkloadStatus{Replicas: 0}
				lifecycle.SetCondition(s, stratv1.ConditionEngineReady, false, stratv1.ReasonWaitingForEventLogger, waitMsg)
				return ctrl.Result{}, nil
			} else if err != nil {
				return ctrl.Result{}, err
			}
		}
		return ctrl.Result{}, r.reconcileBacktestJob(ctx, sc, tmpl)
	}

	replicas := int32(1)
	halted := lifecycle.Halted(sc.redisState, s.Spec.RedisLossPolicy)
	if halted {
		replicas = 0
	}
	var before *appsv1.Deployment
	if cur := (&appsv1.Deployment{}); r.Get(ctx, client.ObjectKey{Namespace: s.Namespace, Name: engineName(s)}, cur) == nil {
		before = cur
	}
	// Not started yet, or at zero after a Halt: wait for the logger. A
	// running engine is never stopped for this.
	waiting := !halted && !sc.loggerListening && (before == nil || ptr.Deref(before.Spec.Replicas, 1) == 0)
	if waiting {
		if before == nil {
			s.Status.Engine = &stratv1.WorkloadStatus{Replicas: 0}
			lifecycle.SetCondition(s, stratv1.ConditionEngineReady, false, stratv1.ReasonWaitingForEventLogger, waitMsg)
			return ctrl.Result{}, nil
		}
		replicas = 0
	}
	desired := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: engineName(s), Namespace: s.Namespace, Labels: objectLabels(s, componentEngine)},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: selectorLabels(s, componentEngine)},
			// Never two engines trading at once: the old pod stops before
			// the new one starts.
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType},
			Template: tmpl,
		},
	}
	// Say what a change does to a running engine before doing it.
	if before != nil && (!equality.Semantic.DeepDerivative(tmpl, before.Spec.Template) ||
		!sameLengths(tmpl.Spec, before.Spec.Template.Spec)) {
		r.event(s, corev1.EventTypeWarning, "EngineRestarted", "Update",
			"The engine's pod template changed (spec, catalog or a referenced Secret): its pod is replaced now (Recreate: the old one stops before the new one starts)")
	}
	live, err := r.ensure(ctx, s, desired)
	if err != nil {
		return ctrl.Result{}, err
	}
	dep := live.(*appsv1.Deployment)
	if before != nil {
		if ptr.Deref(before.Spec.Replicas, 1) != replicas {
			if halted {
				r.event(s, corev1.EventTypeWarning, "EngineHalted", "Scale", "Redis lost under policy Halt: the engine is scaled to 0")
			} else {
				r.event(s, corev1.EventTypeNormal, "EngineResumed", "Scale", "Redis is back: the engine is scaled to %d", replicas)
			}
		}
	}
	s.Status.Engine = &stratv1.WorkloadStatus{Replicas: replicas, ReadyReplicas: dep.Status.AvailableReplicas}
	switch ready, msg := deploymentAvailable(dep, replicas); {
	case waiting:
		lifecycle.SetCondition(s, stratv1.ConditionEngineReady, false, stratv1.ReasonWaitingForEventLogger, waitMsg)
	case halted:
		lifecycle.SetCondition(s, stratv1.ConditionEngineReady, false, stratv1.ReasonEngineHalted, "Engine scaled to 0: Redis is lost and redisLossPolicy is Halt")
	case ready:
		lifecycle.SetCondition(s, stratv1.ConditionEngineReady, true, stratv1.ReasonEngineRunning, fmt.Sprintf("Deployment %s has %d/%d replicas available", dep.Name, dep.Status.AvailableReplicas, replicas))
	default:
		lifecycle.SetCondition(s, stratv1.ConditionEngineReady, false, stratv1.ReasonEngineStarting, msg)
	}
	return ctrl.Result{}, nil
}

// defaultProbe fills in what the API server would, so that comparing the
// desired template with the stored one sees no difference where there is
// none (integers are compared as they are, zero included).
func defaultProbe(p *corev1.Probe) {
	if p == nil {
		return
	}
	if p.TimeoutSeconds == 0 {
		p.TimeoutSeconds = 1
	}
	if p.PeriodSeconds == 0 {
		p.PeriodSeconds = 10
	}
	if p.SuccessThreshold == 0 {
		p.SuccessThreshold = 1
	}
	if p.FailureThreshold == 0 {
		p.FailureThreshold = 3
	}
}

// reconcileBacktestJob runs the backtest once. A Job's template cannot be
// changed: a changed spec does not rerun it (delete the Job to rerun).
func (r *StrategyReconciler) reconcileBacktestJob(ctx context.Context, sc *scope, tmpl corev1.PodTemplateSpec) error {
	s := sc.strategy
	if tmpl.Spec.RestartPolicy == "" || tmpl.Spec.RestartPolicy == corev1.RestartPolicyAlways {
		tmpl.Spec.RestartPolicy = corev1.RestartPolicyNever
	}
	desired := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: engineName(s), Namespace: s.Namespace, Labels: objectLabels(s, componentEngine)},
		Spec:       batchv1.JobSpec{Template: tmpl, BackoffLimit: ptr.To[int32](2)},
	}
	live, err := r.ensure(ctx, s, desired)
	if err != nil {
		return err
	}
	job := live.(*batchv1.Job)
	s.Status.Engine = &stratv1.WorkloadStatus{Replicas: 1, ReadyReplicas: job.Status.Active}
	for _, c := range job.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			sc.backtestDone = stratv1.PhaseSucceeded
			lifecycle.SetCondition(s, stratv1.ConditionEngineReady, true, stratv1.ReasonBacktestSucceeded, "Backtest Job "+job.Name+" completed")
			return nil
		case batchv1.JobFailed:
			sc.backtestDone = stratv1.PhaseFailed
			return lifecycle.Stalled(stratv1.ReasonBacktestFailed, "Backtest Job %s failed: %s: %s", job.Name, c.Reason, c.Message)
		}
	}
	lifecycle.SetCondition(s, stratv1.ConditionEngineReady, true, stratv1.ReasonEngineRunning, "Backtest Job "+job.Name+" is running")
	return nil
}
