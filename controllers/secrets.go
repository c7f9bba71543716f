package controllers

import (
	"context"
	"fmt"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/lifecycle"
)

// secretRefIndex indexes Strategies by the names of the Secrets they
// reference, so that a Secret's creation or change finds its Strategies.
const secretRefIndex = ".spec.redis.secretRefs"

// secretRefs lists the Secret key references of a Strategy, password first.
func secretRefs(s *stratv1.Strategy) []stratv1.SecretKeySelector {
	r := s.Spec.Redis
	if r == nil {
		return nil
	}
	var refs []stratv1.SecretKeySelector
	if r.PasswordSecretRef != nil {
		refs = append(refs, *r.PasswordSecretRef)
	}
	if r.TLS != nil && r.TLS.Enabled && r.TLS.CASecretRef != nil {
		refs = append(refs, *r.TLS.CASecretRef)
	}
	if r.TLS != nil && r.TLS.Enabled && r.TLS.ClientCertSecretRef != nil {
		// A kubernetes.io/tls Secret: its certificate and its key.
		name := r.TLS.ClientCertSecretRef.Name
		refs = append(refs, stratv1.SecretKeySelector{Name: name, Key: corev1.TLSCertKey},
			stratv1.SecretKeySelector{Name: name, Key: corev1.TLSPrivateKeyKey})
	}
	return refs
}

func indexSecretRefs(o client.Object) []string {
	s, ok := o.(*stratv1.Strategy)
	if !ok {
		return nil
	}
	var names []string
	for _, ref := range secretRefs(s) {
		names = append(names, ref.Name)
	}
	return names
}

// strategiesForSecret maps a Secret event to the Strategies that reference
// the Secret.
func (r *StrategyReconciler) strategiesForSecret(ctx context.Context, o client.Object) []reconcile.Request {
	var list stratv1.StrategyList
	if err := r.List(ctx, &list, client.InNamespace(o.GetNamespace()),
		client.MatchingFields{secretRefIndex: o.GetName()}); err != nil {
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items)+1)
	for _, s := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: s.Namespace, Name: s.Name}})
	}
	// A Secret a Strategy owns (its logger's token): deleted, it is made
	// anew.
	if ref := metav1.GetControllerOf(o); ref != nil && ref.Kind == "Strategy" && ref.APIVersion == stratv1.GroupVersion.String() {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: ref.Name}})
	}
	return reqs
}

// strategiesInNamespace maps a Namespace event to the Strategies that
// have an engine in it.
func (r *StrategyReconciler) strategiesInNamespace(ctx context.Context, o client.Object) []reconcile.Request {
	var list stratv1.StrategyList
	if err := r.List(ctx, &list, client.InNamespace(o.GetName())); err != nil {
		return nil
	}
	var reqs []reconcile.Request
	for _, s := range list.Items {
		if s.Spec.Engine != nil {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: s.Namespace, Name: s.Name}})
		}
	}
	return reqs
}

// resolvedSecret is a referenced Secret key that exists. The value stays
// here, in memory: it is never written to status, events, logs or children.
type resolvedSecret struct {
	ref   stratv1.SecretKeySelector
	value []byte
}

// secretRead is a referenced Secret key's value as a Strategy last read
// it, with the Secret's UID and resourceVersion then.
type secretRead struct {
	uid             types.UID
	resourceVersion string
	value           []byte
}

// secretReadKey names a Secret key a Strategy references.
type secretReadKey struct {
	strategy types.NamespacedName
	ref      stratv1.SecretKeySelector
}

// resolveSecrets reads every referenced Secret key. The Secrets are read
// from the API server, not a cache: the operator keeps no copy of Secrets
// it does not need. A key read before is read again only when the
// Secret's metadata, which the manager watches, says it changed (another
// UID or resourceVersion): a healthy reconcile reads nothing past the
// cache, and the value kept is the one the Strategy's Redis client holds
// anyway. A missing Secret or key stalls the Strategy; so does a Secret
// without the consent label (stratv1.CredentialsLabel).
func (r *StrategyReconciler) resolveSecrets(ctx context.Context, s *stratv1.Strategy) ([]resolvedSecret, error) {
	refs := secretRefs(s)
	out := make([]resolvedSecret, 0, len(refs))
	// client-go logs response bodies at verbosity 8 with the request's
	// logger: a Secret's body holds its data. Its reads log nothing.
	quiet := logr.NewContext(ctx, logr.Discard())
	for _, ref := range refs {
		key := secretReadKey{client.ObjectKeyFromObject(s), ref}
		if v, ok := r.unchangedSecret(ctx, s.Namespace, key); ok {
			out = append(out, resolvedSecret{ref: ref, value: v})
			continue
		}
		var sec corev1.Secret
		err := r.APIReader.Get(quiet, types.NamespacedName{Namespace: s.Namespace, Name: ref.Name}, &sec)
		if apierrors.IsNotFound(err) {
			return nil, lifecycle.Stall(stratv1.ReasonSecretNotFound,
				"Secret %q referenced by %s does not exist in namespace %q", ref.Name, refField(s, ref), s.Namespace)
		}
		if err != nil {
			return nil, fmt.Errorf("reading Secret %q: %w", ref.Name, err)
		}
		v, ok := sec.Data[ref.Key]
		if !ok {
			return nil, lifecycle.Stall(stratv1.ReasonSecretKeyNotFound,
				"Secret %q has no key %q (referenced by %s)", ref.Name, ref.Key, refField(s, ref))
		}
		if sec.Labels[stratv1.CredentialsLabel] != "true" {
			// Checked every time: consent withdrawn is consent refused,
			// whatever ran before.
			return nil, lifecycle.Stall(stratv1.ReasonSecretNotPermitted,
				"Secret %q (referenced by %s) lacks the label %s: \"true\"; its owner adds it to let stratops use it as Redis credentials",
				ref.Name, refField(s, ref), stratv1.CredentialsLabel)
		}
		r.secretReads.Store(key, secretRead{uid: sec.UID, resourceVersion: sec.ResourceVersion, value: v})
		out = append(out, resolvedSecret{ref: ref, value: v})
	}
	return out, nil
}

// unchangedSecret is the value last read of a referenced Secret key, if
// the Secret's cached metadata says it is the same Secret at the same
// resourceVersion.
func (r *StrategyReconciler) unchangedSecret(ctx context.Context, namespace string, key secretReadKey) ([]byte, bool) {
	last, ok := r.secretReads.Load(key)
	if !ok || r.MetadataCache == nil {
		return nil, false
	}
	meta := &metav1.PartialObjectMetadata{}
	meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	if err := r.MetadataCache.Get(ctx, types.NamespacedName{Namespace: namespace, Name: key.ref.Name}, meta); err != nil {
		return nil, false
	}
	read := last.(secretRead)
	// Consent is checked every time, here on the watched labels; one
	// withdrawn is read again from the API server, which stalls.
	return read.value, meta.UID == read.uid && meta.ResourceVersion == read.resourceVersion &&
		meta.Labels[stratv1.CredentialsLabel] == "true"
}

// refField names the spec field that holds a Secret reference.
func refField(s *stratv1.Strategy, ref stratv1.SecretKeySelector) string {
	if r := s.Spec.Redis; r != nil && r.PasswordSecretRef != nil && *r.PasswordSecretRef == ref {
		return "spec.redis.passwordSecretRef"
	}
	if r := s.Spec.Redis; r != nil && r.TLS != nil && r.TLS.CASecretRef != nil && *r.TLS.CASecretRef == ref {
		return "spec.redis.tls.caSecretRef"
	}
	return "spec.redis.tls.clientCertSecretRef"
}
