package controllers

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/children"
	"github.com/stratops/stratops/internal/lifecycle"
)

// reconcileEventLogger provisions the event logger and sets
// EventLoggerReady from its Deployment.
func (r *StrategyReconciler) reconcileEventLogger(ctx context.Context, sc *scope) (ctrl.Result, error) {
	s := sc.strategy
	image := s.Spec.EventLogger.Image
	if image == "" {
		image = r.EventLoggerImage
	}
	replicas := children.EventLoggerReplicas(s)
	if _, err := ensure(ctx, r, s, children.CatalogName(s), &corev1.ConfigMap{},
		children.CatalogConfigMap(s, sc.catalogJSON), corev1ac.ExtractConfigMap, nil); err != nil {
		return ctrl.Result{}, err
	}
	if _, err := ensure(ctx, r, s, children.EventLoggerName(s), &corev1.ServiceAccount{},
		children.EventLoggerServiceAccount(s), corev1ac.ExtractServiceAccount, nil); err != nil {
		return ctrl.Result{}, err
	}
	if _, err := ensure(ctx, r, s, children.EventLoggerName(s), &corev1.Service{},
		children.EventLoggerService(s), corev1ac.ExtractService, nil); err != nil {
		return ctrl.Result{}, err
	}
	if sc.redisState == lifecycle.RedisGated {
		// The gate: a Live strategy's logger rolls out only once Redis
		// proved itself.
		s.Status.EventLogger = &stratv1.WorkloadStatus{Replicas: 0}
		lifecycle.SetCondition(s, stratv1.ConditionEventLoggerReady, false, stratv1.ReasonGated, "The event logger waits for Redis to pass its probes")
		return ctrl.Result{}, nil
	}
	res, err := ensure(ctx, r, s, children.EventLoggerName(s), &appsv1.Deployment{},
		children.EventLoggerDeployment(s, image, sc.configHash, sc.redis != nil), appsv1ac.ExtractDeployment, nil)
	if err != nil {
		return ctrl.Result{}, err
	}
	dep := res.current
	sc.loggerListening = dep.Status.AvailableReplicas > 0
	ready, msg := deploymentAvailable(dep, replicas)
	s.Status.EventLogger = &stratv1.WorkloadStatus{Replicas: replicas, ReadyReplicas: dep.Status.AvailableReplicas}
	if ready {
		lifecycle.SetCondition(s, stratv1.ConditionEventLoggerReady, true, stratv1.ReasonEventLoggerAvailable,
			fmt.Sprintf("Deployment %s has %d/%d replicas available", dep.Name, dep.Status.AvailableReplicas, replicas))
	} else {
		lifecycle.SetCondition(s, stratv1.ConditionEventLoggerReady, false, stratv1.ReasonEventLoggerNotReady, msg)
	}
	return ctrl.Result{}, nil
}

// deploymentAvailable reports whether a Deployment has rolled out its
// current template with every replica available, and if not, why.
func deploymentAvailable(d *appsv1.Deployment, want int32) (bool, string) {
	switch {
	case d.Status.ObservedGeneration < d.Generation:
		return false, fmt.Sprintf("Deployment %s: waiting for the deployment controller to observe generation %d", d.Name, d.Generation)
	case d.Status.UpdatedReplicas < want:
		return false, fmt.Sprintf("Deployment %s: %d/%d replicas updated", d.Name, d.Status.UpdatedReplicas, want)
	case d.Status.AvailableReplicas < want:
		return false, fmt.Sprintf("Deployment %s: %d/%d replicas available", d.Name, d.Status.AvailableReplicas, want)
	case d.Status.Replicas > d.Status.UpdatedReplicas:
		return false, fmt.Sprintf("Deployment %s: %d old replicas pending termination", d.Name, d.Status.Replicas-d.Status.UpdatedReplicas)
	}
	return true, ""
}
