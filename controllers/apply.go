package controllers

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"reflect"

	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/children"
	"github.com/stratops/stratops/internal/lifecycle"
)

// fieldManager is the operator's name in the children's managed fields:
// it owns the fields it applies, and only those.
const fieldManager = children.ManagerName

// applied is what ensure found and did.
type applied[T client.Object, A any] struct {
	// current is the object as the cache held it before the apply (its
	// status is what the controller reads); the zero object when created.
	// It shares its maps and slices with the cache: copy it to change it.
	current          T
	created, updated bool
}

// ensure makes the cluster hold desired, by server-side apply under
// fieldManager: the operator owns the fields it sets and nothing else, so
// a rollout-restart annotation, a label a policy engine adds or fields
// another controller owns stay. It reads the current object from the cache
// and applies only when what the operator owns differs from desired, so a
// Strategy whose children are in shape costs no write. What it owns is
// compared as the cache digested it (ownedSumAnnotation) or, for an object
// kept whole, as extracted from its managed fields. A child someone else
// made under the same name stalls the Strategy. extract nil means create
// only (a Job, whose template cannot change). before, when set, runs just
// before an update is applied, with what the operator owned.
func ensure[T client.Object, A runtime.ApplyConfiguration](ctx context.Context, r *StrategyReconciler, s *stratv1.Strategy,
	name string, current T, desired A, extract func(T, string) (A, error), before func(owned A) error,
) (applied[T, A], error) {
	res := applied[T, A]{current: current}
	kind := kindOf(r.Scheme, current)
	found, err := r.getOrCreate(ctx, s, name, current, desired, extract == nil)
	if err != nil || !found {
		res.created = err == nil
		return res, err
	}
	if !metav1.IsControlledBy(current, s) {
		return res, lifecycle.Stall(stratv1.ReasonNameConflict,
			"%s %q exists and is not owned by this Strategy; rename or delete it", kind, name)
	}
	if extract == nil {
		return res, nil
	}
	// Reading what the operator owns parses the managed fields, which
	// costs more than the rest of a reconcile: an object already found in
	// shape at this resourceVersion, for the same desired state, is not
	// read again.
	shapeKey := childKey{strategy: client.ObjectKeyFromObject(s), kind: kind, name: name}
	desiredSum, err := digest(desired)
	if err != nil {
		return res, err
	}
	if seen, ok := r.inShape.Load(shapeKey); ok && seen == (shapeMark{current.GetResourceVersion(), desiredSum}) {
		return res, nil
	}
	sum, digested := ownedSum(current)
	if digested && before != nil {
		// The cache dropped what before reads (see ownedSumOf): read
		// the whole object.
		if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(current), current); err != nil {
			return res, fmt.Errorf("reading %s %q: %w", kind, name, err)
		}
		digested = false
	}
	var owned A
	inShape := false
	if digested {
		// What the operator owns, as the cache digested it.
		inShape = hmac.Equal([]byte(sum), []byte(keyedSum(desiredSum)))
	} else {
		if owned, err = extract(current, fieldManager); err != nil {
			return res, fmt.Errorf("reading what the operator owns of %s %q: %w", kind, name, err)
		}
		inShape = equality.Semantic.DeepEqual(owned, desired)
	}
	if inShape {
		r.inShape.Store(shapeKey, shapeMark{current.GetResourceVersion(), desiredSum})
		return res, nil
	}
	if before != nil {
		if err := before(owned); err != nil {
			return res, err
		}
	}
	// Forced: a field someone else changed (an image set by hand) is taken
	// back; fields only others own are left alone.
	if err := r.Apply(ctx, desired, client.FieldOwner(fieldManager), client.ForceOwnership); err != nil {
		return res, fmt.Errorf("applying %s %q: %w", kind, name, err)
	}
	// Logged, not an event: the Strategy's events are the outcomes a
	// person acts on, and keeping its children in shape is the routine.
	ctrl.LoggerFrom(ctx).Info("Applied "+kind+" to match the Strategy", "name", name)
	res.updated = true
	return res, nil
}

// builtFrom names everything a child's desired state is built from: the
// Strategy's UID and generation (the builders in internal/children read
// its spec, name, namespace, UID and generation alone) and extra, the
// builder's other arguments (of a comparable type: ensureBuilt's E).
type builtFrom struct {
	uid   types.UID
	gen   int64
	extra any
}

// builtMark records that a child, at a resourceVersion, held what the
// operator wants as built from those inputs.
type builtMark struct {
	resourceVersion string
	from            builtFrom
}

// ensureBuilt is ensure for a desired state built only when it must be: a
// child found in shape at its resourceVersion, for the same inputs, is
// neither built, nor encoded, nor compared again. Building and digesting
// the logger's Deployment and its neighbours was a third of a healthy
// reconcile's allocations. extract must not be nil.
func ensureBuilt[T client.Object, A runtime.ApplyConfiguration, E comparable](ctx context.Context, r *StrategyReconciler, s *stratv1.Strategy,
	name string, current T, extra E, build func() A, extract func(T, string) (A, error), before func(owned A) error,
) (applied[T, A], error) {
	if builtInShape(ctx, r, s, name, current, extra) {
		return applied[T, A]{current: current}, nil
	}
	res, err := ensure(ctx, r, s, name, current, build(), extract, before)
	if err == nil && !res.created && !res.updated {
		r.inShape.Store(builtKey(r, s, name, current), builtMark{current.GetResourceVersion(), builtFrom{s.UID, s.Generation, extra}})
	}
	return res, err
}

// builtInShape reports whether a child was found in shape at the
// resourceVersion the cache holds now, for the same inputs (see
// ensureBuilt); current is then the cache's object.
func builtInShape[T client.Object, E comparable](ctx context.Context, r *StrategyReconciler, s *stratv1.Strategy, name string, current T, extra E) bool {
	seen, ok := r.inShape.Load(builtKey(r, s, name, current))
	if !ok {
		return false
	}
	err := r.Get(ctx, client.ObjectKey{Namespace: s.Namespace, Name: name}, current,
		&client.GetOptions{UnsafeDisableDeepCopy: ptr.To(true)})
	return err == nil && seen == (builtMark{current.GetResourceVersion(), builtFrom{s.UID, s.Generation, extra}})
}

// ensureBeside is ensureBuilt in a goroutine of side, for a child that
// depends on nothing the caller does meanwhile; one found in shape now
// (builtInShape) costs a cache read and no goroutine.
func ensureBeside[T client.Object, A runtime.ApplyConfiguration, E comparable](ctx context.Context, side *errgroup.Group, r *StrategyReconciler, s *stratv1.Strategy,
	name string, newObject func() T, extra E, build func() A, extract func(T, string) (A, error),
) {
	if builtInShape(ctx, r, s, name, newObject(), extra) {
		return
	}
	side.Go(func() error {
		_, err := ensureBuilt(ctx, r, s, name, newObject(), extra, build, extract, nil)
		return err
	})
}

func builtKey(r *StrategyReconciler, s *stratv1.Strategy, name string, current client.Object) childKey {
	return childKey{strategy: client.ObjectKeyFromObject(s), kind: kindOf(r.Scheme, current), name: name, built: true}
}

// childKey names a child of a Strategy in the reconciler's memos
// (inShape): as ensure found it (shapeMark), or as ensureBuilt built it
// (built, builtMark).
type childKey struct {
	strategy   types.NamespacedName
	kind, name string
	built      bool
}

// getOrCreate reads a child into current from the cache or, when the
// cache lacks it, creates it from desired: with a create-only apply (see
// createOnly), or, for a child made once and never changed (once: a
// catalog, a backtest Job), with a plain create (see createOnce). found is
// false when there was none and desired created it. The cache holds only
// objects labelled as ours: when the create finds one of that name anyway
// (someone else's, or ours the cache has not seen yet), it is read from
// the API server, and the caller judges it.
func (r *StrategyReconciler) getOrCreate(ctx context.Context, s *stratv1.Strategy, name string, current client.Object, desired runtime.ApplyConfiguration, once bool) (found bool, err error) {
	kind := kindOf(r.Scheme, current)
	key := client.ObjectKey{Namespace: s.Namespace, Name: name}
	// The cache's own object, not a deep copy (which cost more than the
	// rest of a healthy reconcile's reads): current is read, never changed
	// below its top level, by ensure and its callers.
	err = r.Get(ctx, key, current, &client.GetOptions{UnsafeDisableDeepCopy: ptr.To(true)})
	switch {
	case err == nil:
		return true, nil
	case !apierrors.IsNotFound(err):
		return false, fmt.Errorf("reading %s %q: %w", kind, name, err)
	}
	var created client.Object
	if once {
		created, err = r.createOnce(ctx, desired, current)
	} else {
		created, err = r.createOnly(ctx, desired)
	}
	switch {
	case err == nil:
		ctrl.LoggerFrom(ctx).Info("Created "+kind, "name", name)
		current.SetName(name)
		current.SetNamespace(s.Namespace)
		current.SetUID(created.GetUID())
		current.SetResourceVersion(created.GetResourceVersion())
		return false, nil
	case apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err):
		// The exception to reading through the cache: an object of that
		// name exists and the cache does not hold it.
		if err := r.APIReader.Get(ctx, key, current); err != nil {
			return false, fmt.Errorf("reading %s %q: %w", kind, name, err)
		}
		return true, nil
	default:
		return false, fmt.Errorf("creating %s %q: %w", kind, name, err)
	}
}

// createOnlyResourceVersion makes an apply create-only: an apply that
// names a resourceVersion creates the object when there is none, and is
// refused with a Conflict when there is one at any other version. An
// object's resourceVersion is the store's revision of its last write, and
// revision 1 is the first write a cluster ever makes: never a child of a
// Strategy. One request, where reading first and then applying took two,
// and the object is owned by the operator's apply from its creation.
const createOnlyResourceVersion = "1"

// createOnly creates desired by server-side apply, refused when an object
// of its name exists; it returns the object created.
func (r *StrategyReconciler) createOnly(ctx context.Context, desired runtime.ApplyConfiguration) (*unstructured.Unstructured, error) {
	b, err := json.Marshal(desired)
	if err != nil {
		return nil, fmt.Errorf("encoding an apply configuration: %w", err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(b); err != nil {
		return nil, fmt.Errorf("encoding an apply configuration: %w", err)
	}
	u.SetResourceVersion(createOnlyResourceVersion)
	if err := r.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(fieldManager)); err != nil {
		return nil, err
	}
	return u, nil
}

// createOnce creates desired with a plain create, refused when an object
// of its name exists; it returns the object created, a new one of like's
// type. It is for a child the operator makes once and never changes (a
// catalog, a backtest Job, the logger's token), which no later apply
// needs to own: a create costs the API server much less than an apply
// that creates (no apply patch to parse from YAML, no field sets to
// merge), and at a thousand Strategies the API server's CPU is what
// bounds the time to Ready.
func (r *StrategyReconciler) createOnce(ctx context.Context, desired runtime.ApplyConfiguration, like client.Object) (client.Object, error) {
	b, err := json.Marshal(desired)
	if err != nil {
		return nil, fmt.Errorf("encoding an apply configuration: %w", err)
	}
	obj, ok := like.DeepCopyObject().(client.Object)
	if !ok {
		return nil, fmt.Errorf("a %T is not an object", like)
	}
	if err := json.Unmarshal(b, obj); err != nil {
		return nil, fmt.Errorf("decoding an apply configuration into a %T: %w", like, err)
	}
	if err := r.Create(ctx, obj, client.FieldOwner(fieldManager)); err != nil {
		return nil, err
	}
	return obj, nil
}

// shapeMark records that an object, at a resourceVersion, held what the
// operator wants, as digested.
type shapeMark struct {
	resourceVersion string
	desired         [sha256.Size]byte
}

func digest(ac any) ([sha256.Size]byte, error) {
	b, err := json.Marshal(ac)
	if err != nil {
		return [sha256.Size]byte{}, fmt.Errorf("encoding an apply configuration: %w", err)
	}
	return sha256.Sum256(b), nil
}

func kindOf(scheme *runtime.Scheme, o client.Object) string {
	// A typed object's kind is its Go type's name (the scheme registers
	// each type under its name): read without the scheme's lookups, which
	// cost more than the cache read they named.
	switch o.(type) {
	case *unstructured.Unstructured, *metav1.PartialObjectMetadata:
	default:
		if t := reflect.TypeOf(o); t.Kind() == reflect.Pointer {
			return t.Elem().Name()
		}
	}
	gvk, err := apiutil.GVKForObject(o, scheme)
	if err != nil {
		return fmt.Sprintf("%T", o)
	}
	return gvk.Kind
}
