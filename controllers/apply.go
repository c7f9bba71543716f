package controllers

import (
	"context"
	"fmt"
	"maps"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/lifecycle"
)

// ensure makes the cluster hold desired, owned by s. It reads the current
// object from the cache and writes only when a field the operator sets
// differs (equality.Semantic.DeepDerivative ignores what the API server
// defaulted), so a reconcile of a Strategy whose children are in shape
// sends no write. A child that was deleted is created again; one that was
// edited by hand is put back. It returns the object as the API server
// holds it, status included.
func (r *StrategyReconciler) ensure(ctx context.Context, s *stratv1.Strategy, desired client.Object) (client.Object, error) {
	if err := controllerutil.SetControllerReference(s, desired, r.Scheme); err != nil {
		return nil, err
	}
	kind := kindOf(desired)
	current := desired.DeepCopyObject().(client.Object)
	err := r.Get(ctx, client.ObjectKeyFromObject(desired), current)
	if apierrors.IsNotFound(err) {
		err = r.Create(ctx, desired)
		if apierrors.IsAlreadyExists(err) {
			// The cache only holds objects labelled as ours: this one was
			// made by someone else, or lost its labels. Read it directly.
			err = r.APIReader.Get(ctx, client.ObjectKeyFromObject(desired), current)
			if err != nil {
				return nil, fmt.Errorf("reading %s %q: %w", kind, desired.GetName(), err)
			}
			return r.update(ctx, s, kind, desired, current)
		}
		if err != nil {
			return nil, fmt.Errorf("creating %s %q: %w", kind, desired.GetName(), err)
		}
		ctrl.LoggerFrom(ctx).Info("Created "+kind, "name", desired.GetName())
		r.eventAbout(s, desired, corev1.EventTypeNormal, "Created", "Create", "Created %s %s", kind, desired.GetName())
		return desired, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s %q: %w", kind, desired.GetName(), err)
	}
	return r.update(ctx, s, kind, desired, current)
}

// update brings current in line with desired, if it is ours and needs it.
func (r *StrategyReconciler) update(ctx context.Context, s *stratv1.Strategy, kind string, desired, current client.Object) (client.Object, error) {
	if !metav1IsControlledBy(current, s) {
		return nil, lifecycle.Stalled(stratv1.ReasonNameConflict,
			"%s %q exists and is not owned by this Strategy; rename or delete it", kind, desired.GetName())
	}
	if inShape(desired, current) {
		return current, nil
	}
	merge(desired, current)
	if err := r.Update(ctx, current); err != nil {
		return nil, fmt.Errorf("updating %s %q: %w", kind, desired.GetName(), err)
	}
	ctrl.LoggerFrom(ctx).Info("Updated "+kind, "name", desired.GetName())
	r.eventAbout(s, current, corev1.EventTypeNormal, "Updated", "Update", "Updated %s %s to match the Strategy", kind, desired.GetName())
	return current, nil
}

func metav1IsControlledBy(o client.Object, s *stratv1.Strategy) bool {
	for _, ref := range o.GetOwnerReferences() {
		if ref.Controller != nil && *ref.Controller && ref.UID == s.UID {
			return true
		}
	}
	return false
}

// inShape reports whether current carries every field desired sets.
func inShape(desired, current client.Object) bool {
	if !subset(desired.GetLabels(), current.GetLabels()) ||
		!subset(desired.GetAnnotations(), current.GetAnnotations()) {
		return false
	}
	switch d := desired.(type) {
	case *corev1.ConfigMap:
		c := current.(*corev1.ConfigMap)
		return equality.Semantic.DeepEqual(d.Data, c.Data) && equality.Semantic.DeepEqual(d.BinaryData, c.BinaryData)
	case *corev1.ServiceAccount:
		c := current.(*corev1.ServiceAccount)
		return equality.Semantic.DeepEqual(d.AutomountServiceAccountToken, c.AutomountServiceAccountToken)
	case *corev1.Service:
		c := current.(*corev1.Service)
		return equality.Semantic.DeepDerivative(d.Spec, c.Spec)
	case *batchv1.Job:
		// A Job's template is immutable: it runs as it was created.
		return true
	case *appsv1.Deployment:
		c := current.(*appsv1.Deployment)
		return equality.Semantic.DeepDerivative(d.Spec, c.Spec) &&
			// DeepDerivative takes an empty list in desired as "unset"; an
			// engine or logger with fewer env vars or volumes than before
			// must still shrink.
			sameLengths(d.Spec.Template.Spec, c.Spec.Template.Spec)
	}
	return equality.Semantic.DeepDerivative(desired, current)
}

func sameLengths(d, c corev1.PodSpec) bool {
	if len(d.Containers) != len(c.Containers) || len(d.Volumes) != len(c.Volumes) ||
		len(d.InitContainers) != len(c.InitContainers) {
		return false
	}
	for i := range d.Containers {
		if len(d.Containers[i].Env) != len(c.Containers[i].Env) ||
			len(d.Containers[i].VolumeMounts) != len(c.Containers[i].VolumeMounts) ||
			!equality.Semantic.DeepEqual(d.Containers[i].Resources, c.Containers[i].Resources) {
			return false
		}
	}
	return true
}

// merge copies the fields the operator owns from desired onto current,
// keeping what others own (the Service's cluster IP, labels added by other
// tools, the Deployment's immutable selector).
func merge(desired, current client.Object) {
	labels := current.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, desired.GetLabels())
	current.SetLabels(labels)
	if len(desired.GetAnnotations()) > 0 {
		ann := current.GetAnnotations()
		if ann == nil {
			ann = map[string]string{}
		}
		maps.Copy(ann, desired.GetAnnotations())
		current.SetAnnotations(ann)
	}
	current.SetOwnerReferences(desired.GetOwnerReferences())
	switch d := desired.(type) {
	case *corev1.ConfigMap:
		c := current.(*corev1.ConfigMap)
		c.Data, c.BinaryData = d.Data, d.BinaryData
	case *corev1.ServiceAccount:
		c := current.(*corev1.ServiceAccount)
		c.AutomountServiceAccountToken = d.AutomountServiceAccountToken
	case *corev1.Service:
		c := current.(*corev1.Service)
		c.Spec.Type, c.Spec.Selector, c.Spec.Ports = d.Spec.Type, d.Spec.Selector, d.Spec.Ports
	case *appsv1.Deployment:
		c := current.(*appsv1.Deployment)
		c.Spec.Replicas, c.Spec.Template, c.Spec.Strategy = d.Spec.Replicas, d.Spec.Template, d.Spec.Strategy
	}
}

func subset(want, have map[string]string) bool {
	for k, v := range want {
		if hv, ok := have[k]; !ok || hv != v {
			return false
		}
	}
	return true
}

func kindOf(o client.Object) string {
	switch o.(type) {
	case *corev1.ConfigMap:
		return "ConfigMap"
	case *corev1.ServiceAccount:
		return "ServiceAccount"
	case *corev1.Service:
		return "Service"
	case *appsv1.Deployment:
		return "Deployment"
	case *batchv1.Job:
		return "Job"
	}
	return fmt.Sprintf("%T", o)
}
