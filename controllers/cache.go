package controllers

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"
	policyv1ac "k8s.io/client-go/applyconfigurations/policy/v1"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/children"
)

const lastAppliedAnnotation = "kubectl.kubernetes.io/last-applied-configuration"

// ownedSumAnnotation carries, on a child as the manager's cache holds it,
// the digest of what the operator's apply owns of it (keyedSum of the
// digest of its extract), taken when the cache took the object, after
// which the managed fields are dropped. It exists only in the cache: the
// operator writes its children from apply configurations it builds, never
// from an object it read, so it never reaches the API server.
const ownedSumAnnotation = "cache.stratops.dev/owned-sha256"

// cacheKey keys the cache's digests with this process's own random bytes:
// an annotation someone sets on the API server cannot pass for one, even
// one computed from the desired state, which anyone can build.
var cacheKey = func() []byte {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("controllers: no random bytes for the cache's key: %v", err))
	}
	return b
}()

// keyedSum is the HMAC of a digest under cacheKey, in hex.
func keyedSum(sum [sha256.Size]byte) string {
	m := hmac.New(sha256.New, cacheKey)
	m.Write(sum[:])
	return hex.EncodeToString(m.Sum(nil))
}

// trimForCache keeps in the cache only what the operator reads of an
// object:
//   - not kubectl apply's whole copy of the object in an annotation (for a
//     Secret created that way, its data);
//   - of a child the operator applies with nothing read of what it owns
//     but whether it matches (ownedSumOf), the digest of what it owns
//     (ownedSumAnnotation) and no managed fields: of the event logger's
//     Deployment, only the part of its pod template that is read
//     (leanLoggerTemplate), no selector; of the others, nothing but who
//     they are (digestOnly). Their managed fields and templates were a
//     third of the informer caches at a thousand Strategies;
//   - of a catalog ConfigMap, no data: it is made once, immutable, and
//     never read back;
//   - of the other children's managed fields, only the operator's own
//     apply, which ensure reads to know what it owns of them (the engine's
//     Deployment: a held update keeps what runs); of a Strategy's, none.
func trimForCache(obj any) (any, error) {
	o, ok := obj.(metav1.Object)
	if !ok {
		return obj, nil
	}
	if _, trimmed := ownedSum(o); trimmed {
		// Already trimmed: the informer may hand back an object it holds
		// (a relist), and its digest cannot be taken again without the
		// managed fields it was taken from.
		return obj, nil
	}
	if a := o.GetAnnotations(); a != nil {
		_, applied := a[lastAppliedAnnotation]
		_, forged := a[ownedSumAnnotation] // set on the API server by someone
		if applied || forged {
			delete(a, lastAppliedAnnotation)
			delete(a, ownedSumAnnotation)
			o.SetAnnotations(a)
		}
	}
	switch t := obj.(type) {
	case *stratv1.Strategy:
		o.SetManagedFields(nil)
		return obj, nil
	case *corev1.ConfigMap:
		if t.Labels[children.LabelComponent] == children.ComponentCatalog {
			t.Data, t.BinaryData = nil, nil
		}
	}
	if owned, ok := ownedSumOf(obj); ok {
		sum, err := digest(owned)
		if err == nil {
			// Of the Deployments, ownedSumOf digests only the logger's.
			if d, isDeployment := obj.(*appsv1.Deployment); isDeployment {
				a := o.GetAnnotations()
				if a == nil {
					a = map[string]string{}
				}
				a[ownedSumAnnotation] = keyedSum(sum)
				d.Annotations, d.ManagedFields = a, nil
				d.Spec.Template = leanLoggerTemplate(d.Spec.Template)
				d.Spec.Selector = nil
				return obj, nil
			}
			return digestOnly(obj, keyedSum(sum)), nil
		}
	}
	fields := o.GetManagedFields()
	if own := slices.DeleteFunc(fields, func(f metav1.ManagedFieldsEntry) bool {
		return f.Manager != fieldManager || f.Operation != metav1.ManagedFieldsOperationApply || f.Subresource != ""
	}); len(own) < len(fields) {
		// DeleteFunc zeroed the entries past own: nothing holds their fields.
		o.SetManagedFields(slices.Clip(own))
	}
	return obj, nil
}

// digestOnly is a child of which the reconciler reads nothing but its
// digest (a ServiceAccount, Service, NetworkPolicy or PodDisruptionBudget)
// as the cache keeps it: who it is, who controls it, its version, and the
// digest sum of what the operator owns of it. No spec, status, labels or
// other annotations: the watch selected it by its labels already.
func digestOnly(obj any, sum string) any {
	meta := func(m metav1.ObjectMeta) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion,
			Generation: m.Generation, CreationTimestamp: m.CreationTimestamp, DeletionTimestamp: m.DeletionTimestamp,
			OwnerReferences: m.OwnerReferences, Annotations: map[string]string{ownedSumAnnotation: sum}}
	}
	switch t := obj.(type) {
	case *corev1.ServiceAccount:
		return &corev1.ServiceAccount{TypeMeta: t.TypeMeta, ObjectMeta: meta(t.ObjectMeta)}
	case *corev1.Service:
		return &corev1.Service{TypeMeta: t.TypeMeta, ObjectMeta: meta(t.ObjectMeta)}
	case *networkingv1.NetworkPolicy:
		return &networkingv1.NetworkPolicy{TypeMeta: t.TypeMeta, ObjectMeta: meta(t.ObjectMeta)}
	case *policyv1.PodDisruptionBudget:
		return &policyv1.PodDisruptionBudget{TypeMeta: t.TypeMeta, ObjectMeta: meta(t.ObjectMeta)}
	}
	panic(fmt.Sprintf("digestOnly: %T is not digested", obj))
}

// ownedSumOf extracts what the operator's apply owns of a child that ensure
// only compares with what it wants (no before hook, no owned state read):
// the ServiceAccounts, Services, NetworkPolicies, PodDisruptionBudgets and
// the event logger's Deployment. ok is false for any other object, and
// when the extract fails (the object is then cached as it was).
func ownedSumOf(obj any) (owned runtime.ApplyConfiguration, ok bool) {
	var err error
	switch o := obj.(type) {
	case *corev1.ServiceAccount:
		owned, err = corev1ac.ExtractServiceAccount(o, fieldManager)
	case *corev1.Service:
		owned, err = corev1ac.ExtractService(o, fieldManager)
	case *networkingv1.NetworkPolicy:
		owned, err = networkingv1ac.ExtractNetworkPolicy(o, fieldManager)
	case *policyv1.PodDisruptionBudget:
		owned, err = policyv1ac.ExtractPodDisruptionBudget(o, fieldManager)
	case *appsv1.Deployment:
		if !isLoggerDeployment(o) {
			return nil, false
		}
		owned, err = appsv1ac.ExtractDeployment(o, fieldManager)
	default:
		return nil, false
	}
	return owned, err == nil
}

// isLoggerDeployment tells an event logger's Deployment by its component
// label and its name: an engine's is named <strategy>-engine, so no
// relabelling makes an engine's Deployment, whose template a held update
// reads, look like a logger's.
func isLoggerDeployment(d *appsv1.Deployment) bool {
	return d.Labels[children.LabelComponent] == children.ComponentEventLogger && strings.HasSuffix(d.Name, loggerNameSuffix)
}

// loggerNameSuffix ends every event logger's name: <strategy>-eventlogger.
var loggerNameSuffix = children.EventLoggerName(&stratv1.Strategy{})

// leanLoggerTemplate is the part of a logger's pod template the reconciler
// reads: the catalogs it mounts (children.CatalogsIn, when old catalogs
// are pruned) and the names of its containers' variables (busOf).
func leanLoggerTemplate(t corev1.PodTemplateSpec) corev1.PodTemplateSpec {
	lean := corev1.PodTemplateSpec{}
	for _, v := range t.Spec.Volumes {
		if v.ConfigMap != nil {
			lean.Spec.Volumes = append(lean.Spec.Volumes, corev1.Volume{Name: v.Name,
				VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: v.ConfigMap.LocalObjectReference}}})
		}
	}
	for _, c := range t.Spec.Containers {
		names := make([]corev1.EnvVar, len(c.Env))
		for i, e := range c.Env {
			names[i] = corev1.EnvVar{Name: e.Name}
		}
		lean.Spec.Containers = append(lean.Spec.Containers, corev1.Container{Name: c.Name, Env: names})
	}
	return lean
}

// ownedSum is the digest trimForCache took of what the operator owns of
// a cached child; ok is false for an object it did not digest (not one of
// ownedSumOf's, or read from the API server: that one has managed fields,
// and an annotation of that name on it is no digest of ours).
func ownedSum(o metav1.Object) (sum string, ok bool) {
	if len(o.GetManagedFields()) > 0 {
		return "", false
	}
	sum, ok = o.GetAnnotations()[ownedSumAnnotation]
	return sum, ok
}
