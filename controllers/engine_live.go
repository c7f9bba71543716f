package controllers

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	policyv1ac "k8s.io/client-go/applyconfigurations/policy/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/children"
	"github.com/stratops/stratops/internal/lifecycle"
)

// reconcileLive runs a Live engine as a Deployment: it gathers the facts
// (the Deployment as it runs, the revision it runs, whether the operator
// owns its template), lets lifecycle.DecideEngine decide, and acts on the
// verdict: applies the Deployment (or the held one) and its
// PodDisruptionBudget, and records the verdict's events once the apply
// took.
func (r *StrategyReconciler) reconcileLive(ctx context.Context, sc *scope, tmpl *corev1ac.PodTemplateSpecApplyConfiguration, rev children.Revision) error {
	s := sc.strategy
	facts, owned, err := r.liveEngineFacts(ctx, s, sc, rev)
	if err != nil {
		return err
	}
	v := lifecycle.DecideEngine(facts)
	sc.engineStopped = s.Spec.Engine.Stopped
	if v.UpdatePending != "" {
		lifecycle.SetCondition(s, stratv1.ConditionUpdatePending, true, stratv1.ReasonAwaitingApproval, v.UpdatePending)
	} else {
		lifecycle.RemoveCondition(s, stratv1.ConditionUpdatePending)
	}
	if !v.Apply {
		s.Status.Engine = &stratv1.WorkloadStatus{Replicas: 0}
		setCondition(s, stratv1.ConditionEngineReady, v.EngineReady)
		return nil
	}
	desired := children.EngineDeployment(s, tmpl, v.Replicas)
	if v.Hold {
		desired = owned.WithSpec(owned.Spec.WithReplicas(v.Replicas))
	}
	res, err := ensure(ctx, r, s, children.EngineName(s), &appsv1.Deployment{}, desired, appsv1ac.ExtractDeployment,
		func(*appsv1ac.DeploymentApplyConfiguration) error {
			return r.warnRestart(ctx, s, facts.Running, desired)
		})
	if err != nil {
		return refusedTemplate("Deployment", err)
	}
	if _, err := ensure(ctx, r, s, children.EngineName(s), &policyv1.PodDisruptionBudget{},
		children.EnginePodDisruptionBudget(s), policyv1ac.ExtractPodDisruptionBudget, nil); err != nil {
		return err
	}
	r.recordEvents(s, v.Events, "Update")
	s.Status.Engine = &stratv1.WorkloadStatus{Replicas: v.Replicas, ReadyReplicas: res.current.Status.AvailableReplicas,
		Revision: v.Revision, UpdateRevision: rev.Name}
	setCondition(s, stratv1.ConditionEngineReady, v.EngineReady)
	return nil
}

// liveEngineFacts gathers what DecideEngine decides from. owned is what
// the operator owns of the running Deployment, read only when a new
// revision could be held: the Deployment as it runs, for a hold.
func (r *StrategyReconciler) liveEngineFacts(ctx context.Context, s *stratv1.Strategy, sc *scope, rev children.Revision) (lifecycle.EngineFacts, *appsv1ac.DeploymentApplyConfiguration, error) {
	f := lifecycle.EngineFacts{
		Name: children.EngineName(s), Strategy: s.Name, Redis: sc.redisState, LossPolicy: s.Spec.RedisLossPolicy,
		Stopped: s.Spec.Engine.Stopped, Manual: s.Spec.Engine.UpdateStrategy == stratv1.UpdateManual,
		LoggerListening: sc.loggerListening, Revision: rev.Name, Approved: s.Annotations[stratv1.AnnotationApproveRevision],
		PrevReason: conditionReason(s, stratv1.ConditionEngineReady),
	}
	d := &appsv1.Deployment{}
	if err := r.Get(ctx, client.ObjectKey{Namespace: s.Namespace, Name: f.Name}, d); err != nil {
		return f, nil, client.IgnoreNotFound(err)
	}
	f.Running = d
	f.RunningRevision = d.Spec.Template.Annotations[children.AnnotationRevision]
	if !f.Manual || f.RunningRevision == rev.Name {
		return f, nil, nil
	}
	f.Differs = children.Differences(children.ParseParts(d.Spec.Template.Annotations[children.AnnotationRevisionParts]), rev.Parts)
	owned, err := appsv1ac.ExtractDeployment(d, fieldManager)
	if err != nil {
		return f, nil, fmt.Errorf("reading what the operator owns of Deployment %s: %w", d.Name, err)
	}
	f.Holdable = owned.Spec != nil && owned.Spec.Template != nil
	return f, owned, nil
}

// warnRestart says what a change does to a running engine before doing
// it: a dry run of the apply, which the API server defaults and merges as
// it would the real one, tells whether the pod template really changes.
func (r *StrategyReconciler) warnRestart(ctx context.Context, s *stratv1.Strategy, running *appsv1.Deployment, desired *appsv1ac.DeploymentApplyConfiguration) error {
	if running == nil || ptr.Deref(running.Spec.Replicas, 1) == 0 {
		return nil
	}
	dry, err := r.Clientset.AppsV1().Deployments(s.Namespace).Apply(ctx, desired,
		metav1.ApplyOptions{FieldManager: fieldManager, Force: true, DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		return refusedTemplate("Deployment", fmt.Errorf("dry run of the engine's apply: %w", err))
	}
	if !equality.Semantic.DeepEqual(dry.Spec.Template, running.Spec.Template) {
		r.event(s, corev1.EventTypeWarning, stratv1.EventEngineRestarted, "Update",
			"The engine's pod template changed (spec, catalog or a referenced Secret): its pod is replaced now (Recreate: the old one stops before the new one starts)")
	}
	return nil
}
