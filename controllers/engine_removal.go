package controllers

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/children"
	"github.com/stratops/stratops/internal/lifecycle"
)

// removeEngine removes an engine the spec no longer has: the Live
// Deployment when spec.engine is gone or the mode is Backtest (scaled to
// zero first, deleted once its pods have ended: lifecycle.DecideRemoval),
// the backtest Jobs when spec.engine is gone or the mode is Live (deleted,
// which stops their pod the same way: SIGTERM, then its grace period).
// Removal is said in a Warning event before it starts; only what the
// Strategy owns is deleted. removing is true while a removal is under way.
func (r *StrategyReconciler) removeEngine(ctx context.Context, s *stratv1.Strategy) (removing bool, err error) {
	why := "spec.engine was removed"
	if s.Spec.Engine != nil {
		why = "spec.mode is " + string(s.Spec.Mode)
	}
	if s.Spec.Engine == nil || s.Spec.Mode == stratv1.ModeBacktest {
		d := &appsv1.Deployment{}
		err := r.Get(ctx, client.ObjectKey{Namespace: s.Namespace, Name: children.EngineName(s)}, d)
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return false, err
		case metav1.IsControlledBy(d, s):
			return true, r.removeDeployment(ctx, s, d, why)
		}
	}
	if s.Spec.Engine == nil || s.Spec.Mode == stratv1.ModeLive {
		return false, r.removeBacktests(ctx, s, why)
	}
	return false, nil
}

// removeDeployment takes the next step of removing the engine Deployment.
func (r *StrategyReconciler) removeDeployment(ctx context.Context, s *stratv1.Strategy, d *appsv1.Deployment, why string) error {
	v := lifecycle.DecideRemoval(d, why)
	s.Status.Engine = &stratv1.WorkloadStatus{Replicas: 0, ReadyReplicas: d.Status.AvailableReplicas}
	setCondition(s, stratv1.ConditionEngineReady, v.EngineReady)
	switch v.Step {
	case lifecycle.RemovalScaleDown:
		patch := client.MergeFromWithOptions(d.DeepCopy(), client.MergeFromWithOptimisticLock{})
		d.Spec.Replicas = ptr.To[int32](0)
		if err := r.Patch(ctx, d, patch, client.FieldOwner(fieldManager)); err != nil {
			return fmt.Errorf("scaling Deployment %s to 0: %w", d.Name, err)
		}
	case lifecycle.RemovalDelete:
		if err := r.deleteOwnedNamed(ctx, s, &policyv1.PodDisruptionBudget{}, d.Name); err != nil {
			return err
		}
		if err := r.deleteOwned(ctx, s, d); err != nil {
			return err
		}
	}
	if v.Event != nil {
		r.recordEvents(s, []lifecycle.Event{*v.Event}, "Delete")
	}
	return nil
}

// removeBacktests deletes the Strategy's backtest Jobs; what ran stays in
// status.backtests, and what was running shows as stopped.
func (r *StrategyReconciler) removeBacktests(ctx context.Context, s *stratv1.Strategy, why string) error {
	jobs, err := r.engineJobs(ctx, s)
	if err != nil || len(jobs) == 0 {
		return err
	}
	for i := range jobs {
		j := &jobs[i]
		if !j.DeletionTimestamp.IsZero() {
			continue
		}
		r.event(s, corev1.EventTypeWarning, stratv1.EventEngineRemoved, "Delete",
			"%s: the backtest Job %s is deleted (its pod is stopped with SIGTERM and its grace period)", why, j.Name)
		if err := r.deleteOwned(ctx, s, j); err != nil {
			return err
		}
	}
	s.Status.Backtests = backtestHistory(s, nil)
	return nil
}

// deleteOwned deletes a child, and only one the Strategy controls:
// checked on the object, and again by the API server as a precondition on
// its UID, so that an object someone made anew under the same name in
// between is not deleted. Dependents (a Job's pods) go in the background;
// one already gone is done.
func (r *StrategyReconciler) deleteOwned(ctx context.Context, s *stratv1.Strategy, obj client.Object) error {
	if !metav1.IsControlledBy(obj, s) {
		return nil
	}
	uid := obj.GetUID()
	err := r.Delete(ctx, obj, client.Preconditions{UID: &uid}, client.PropagationPolicy(metav1.DeletePropagationBackground))
	if client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("deleting %s %s: %w", kindOf(r.Scheme, obj), obj.GetName(), err)
	}
	return nil
}

// deleteOwnedNamed deletes the child of that kind and name, if the cache
// holds one the Strategy controls.
func (r *StrategyReconciler) deleteOwnedNamed(ctx context.Context, s *stratv1.Strategy, obj client.Object, name string) error {
	if err := r.Get(ctx, client.ObjectKey{Namespace: s.Namespace, Name: name}, obj); err != nil {
		return client.IgnoreNotFound(err)
	}
	return r.deleteOwned(ctx, s, obj)
}
