package controllers

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/go-logr/logr"
	"golang.org/x/sync/errgroup"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"
	policyv1ac "k8s.io/client-go/applyconfigurations/policy/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/children"
	"github.com/stratops/stratops/internal/lifecycle"
	"github.com/stratops/stratops/internal/redisprobe"
)

// reconcileEventLogger provisions the event logger and sets
// EventLoggerReady from its Deployment.
func (r *StrategyReconciler) reconcileEventLogger(ctx context.Context, sc *scope) (ctrl.Result, error) {
	s := sc.strategy
	image := cmp.Or(s.Spec.EventLogger.Image, r.EventLoggerImage)
	rev, err := r.ensureLoggerSupport(ctx, sc, image)
	if err != nil {
		return ctrl.Result{}, err
	}
	if sc.redisState == lifecycle.RedisGated {
		// The gate: a Live strategy's logger rolls out only once Redis
		// proved itself.
		s.Status.EventLogger = &stratv1.WorkloadStatus{Replicas: 0}
		if reason, msg, refused := redisRefusal(s); refused {
			lifecycle.SetCondition(s, stratv1.ConditionEventLoggerReady, false, reason, "The event logger waits for Redis to pass its probes: "+msg)
			return ctrl.Result{}, nil
		}
		lifecycle.SetCondition(s, stratv1.ConditionEventLoggerReady, false, stratv1.ReasonGated, "The event logger waits for Redis to pass its probes")
		return ctrl.Result{}, nil
	}
	replicas := children.EventLoggerReplicas(s)
	withRedis := sc.redis != nil
	res, err := ensureBuilt(ctx, r, s, children.EventLoggerName(s), &appsv1.Deployment{},
		loggerDeploymentInputs{image, rev.Name, rev.Catalog, withRedis},
		func() *appsv1ac.DeploymentApplyConfiguration {
			return children.EventLoggerDeployment(s, image, rev, withRedis)
		},
		appsv1ac.ExtractDeployment, nil)
	if err != nil {
		return ctrl.Result{}, err
	}
	dep := res.current
	sc.loggerListening = dep.Status.AvailableReplicas > 0
	if err := r.reconcileLoggerPDB(ctx, s, replicas); err != nil {
		return ctrl.Result{}, err
	}
	s.Status.EventLogger = &stratv1.WorkloadStatus{Replicas: replicas, ReadyReplicas: dep.Status.AvailableReplicas,
		Revision: rev.Name, UpdateRevision: rev.Name}
	if prev := sc.base.Status.EventLogger; prev != nil {
		// Until the health read-out names the leader (reconcileHealth).
		s.Status.EventLogger.Leader = prev.Leader
	}
	ready, msg := lifecycle.DeploymentAvailable(dep, replicas)
	if reason, why, refused := redisRefusal(s); refused && sc.redisState != lifecycle.RedisInMemory {
		// Whatever its pods say: Redis refuses what it must write (a
		// backtest on its in-memory bus writes nothing to Redis).
		lifecycle.SetCondition(s, stratv1.ConditionEventLoggerReady, false, reason, why)
	} else if ready {
		lifecycle.SetCondition(s, stratv1.ConditionEventLoggerReady, true, stratv1.ReasonEventLoggerAvailable,
			fmt.Sprintf("Deployment %s has %d/%d replicas available", dep.Name, dep.Status.AvailableReplicas, replicas))
	} else {
		lifecycle.SetCondition(s, stratv1.ConditionEventLoggerReady, false, stratv1.ReasonEventLoggerNotReady, msg)
	}
	return ctrl.Result{}, nil
}

// ensureLoggerSupport provisions what the logger needs before it runs,
// gate or no gate: its ServiceAccount, Service, API token, the catalog
// of its revision and its NetworkPolicy. It returns the revision.
func (r *StrategyReconciler) ensureLoggerSupport(ctx context.Context, sc *scope, image string) (children.Revision, error) {
	s := sc.strategy
	// The ServiceAccount, Service and NetworkPolicy depend on nothing
	// else here: those not found in shape are kept in shape beside the
	// token and the catalog, which depend on each other, so that a new
	// Strategy's first reconcile waits for three round trips in a row, not
	// six. Those in shape cost a cache read, no goroutine.
	name := children.EventLoggerName(s)
	var side errgroup.Group
	ensureBeside(ctx, &side, r, s, name, func() *corev1.ServiceAccount { return &corev1.ServiceAccount{} }, struct{}{},
		func() *corev1ac.ServiceAccountApplyConfiguration { return children.EventLoggerServiceAccount(s) },
		corev1ac.ExtractServiceAccount)
	ensureBeside(ctx, &side, r, s, name, func() *corev1.Service { return &corev1.Service{} }, struct{}{},
		func() *corev1ac.ServiceApplyConfiguration { return children.EventLoggerService(s) },
		corev1ac.ExtractService)
	// The options are replaced, never changed: their pointer names them.
	withRedis, opts := sc.redisState != lifecycle.RedisInMemory, r.networkPolicy.Load()
	ensureBeside(ctx, &side, r, s, name, func() *networkingv1.NetworkPolicy { return &networkingv1.NetworkPolicy{} }, networkPolicyInputs{withRedis, opts},
		func() *networkingv1ac.NetworkPolicyApplyConfiguration {
			return children.EventLoggerNetworkPolicy(s, withRedis, ptr.Deref(opts, children.NetworkPolicyOptions{}))
		},
		networkingv1ac.ExtractNetworkPolicy)
	rev, err := r.ensureLoggerTokenAndCatalog(ctx, sc, image)
	if serr := side.Wait(); err == nil {
		err = serr
	}
	return rev, err
}

// ensureLoggerTokenAndCatalog makes the logger's token and the catalog
// of its revision, which names the token.
func (r *StrategyReconciler) ensureLoggerTokenAndCatalog(ctx context.Context, sc *scope, image string) (children.Revision, error) {
	s := sc.strategy
	tokenUID, err := r.ensureLoggerToken(ctx, s)
	if err != nil {
		return children.Revision{}, err
	}
	sc.tokenUID = string(tokenUID)
	rev, err := r.loggerRevision(sc, image)
	if err != nil {
		return rev, err
	}
	// The catalog of the revision: made once, never changed. One the
	// cache holds, of this Strategy's, is not built again to be compared.
	sc.catalogCM = rev.Catalog
	cm := &corev1.ConfigMap{}
	if err := r.Get(ctx, client.ObjectKey{Namespace: s.Namespace, Name: rev.Catalog}, cm,
		&client.GetOptions{UnsafeDisableDeepCopy: ptr.To(true)}); err == nil && metav1.IsControlledBy(cm, s) {
		return rev, nil
	}
	catalogJSON, err := sc.catalog.Marshal()
	if err != nil {
		return rev, err
	}
	_, err = ensure(ctx, r, s, rev.Catalog, &corev1.ConfigMap{},
		children.CatalogConfigMap(s, rev.Catalog, catalogJSON), nil, nil)
	return rev, err
}

// reconcileLoggerPDB gives several logger replicas a PodDisruptionBudget
// (one at a time through a drain), and removes it (ours only) when one
// replica is left.
func (r *StrategyReconciler) reconcileLoggerPDB(ctx context.Context, s *stratv1.Strategy, replicas int32) error {
	if replicas > 1 {
		_, err := ensure(ctx, r, s, children.EventLoggerName(s), &policyv1.PodDisruptionBudget{},
			children.EventLoggerPodDisruptionBudget(s), policyv1ac.ExtractPodDisruptionBudget, nil)
		return err
	}
	return r.deleteOwnedNamed(ctx, s, &policyv1.PodDisruptionBudget{}, children.EventLoggerName(s))
}

// refusalReasons map a probe's failure to the EventLoggerReady reason of
// a Redis that refuses the logger's writes for good.
var refusalReasons = map[string]string{
	redisprobe.ReasonPermissionDenied: stratv1.ReasonRedisPermissionDenied,
	redisprobe.ReasonWrongType:        stratv1.ReasonRedisWrongType,
	redisprobe.ReasonOutOfMemory:      stratv1.ReasonRedisOutOfMemory,
	redisprobe.ReasonReadOnlyReplica:  stratv1.ReasonRedisReadOnly,
}

// redisRefusal says whether the last probe round found Redis refusing
// what the event logger writes, with the condition's reason and a message
// naming the probe and what Redis said (the command and key).
func redisRefusal(s *stratv1.Strategy) (reason, msg string, refused bool) {
	if s.Status.Redis == nil {
		return "", "", false
	}
	for _, p := range s.Status.Redis.Probes {
		if r, ok := refusalReasons[p.Reason]; ok && !p.OK && p.Name != redisprobe.ProbeOwner {
			return r, fmt.Sprintf("Redis refuses what the event logger writes (probe %s): %s", p.Name, p.Message), true
		}
	}
	return "", "", false
}

// reconcileCatalogs deletes the catalogs of past revisions that no pod
// mounts any more.
func (r *StrategyReconciler) reconcileCatalogs(ctx context.Context, sc *scope) (ctrl.Result, error) {
	if sc.catalogCM == "" {
		return ctrl.Result{}, nil
	}
	return ctrl.Result{}, r.pruneCatalogs(ctx, sc.strategy, sc.catalogCM)
}

// ensureLoggerToken makes the logger's API token once: a random 256-bit
// value in an immutable Secret the Strategy owns, given to the logger and
// the engine by reference. It returns the Secret's UID: a Secret deleted
// and made anew carries a new token, and the pods roll to it.
func (r *StrategyReconciler) ensureLoggerToken(ctx context.Context, s *stratv1.Strategy) (types.UID, error) {
	name := children.EventLoggerTokenName(s)
	key := client.ObjectKey{Namespace: s.Namespace, Name: name}
	// The Secrets' metadata is cached (the operator watches it): a
	// reconcile of a Strategy whose token exists reads nothing from the
	// API server. Its data was checked when the operator made it, and it
	// is immutable.
	meta := &metav1.PartialObjectMetadata{}
	meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	err := r.metadataCache().Get(ctx, key, meta)
	if apierrors.IsNotFound(err) {
		uid, cerr := r.createToken(ctx, s)
		switch {
		case cerr == nil:
			return uid, nil
		case !apierrors.IsConflict(cerr) && !apierrors.IsAlreadyExists(cerr):
			return "", fmt.Errorf("creating Secret %q: %w", name, cerr)
		}
		// There is one the cache has not seen: ask the API server.
		err = r.APIReader.Get(ctx, key, meta)
	}
	switch {
	case err != nil:
		return "", fmt.Errorf("reading Secret %q: %w", name, err)
	case !metav1.IsControlledBy(meta, s):
		return "", lifecycle.Stall(stratv1.ReasonNameConflict,
			"Secret %q exists and is not owned by this Strategy; rename or delete it", name)
	}
	return meta.UID, nil
}

// createToken makes the logger's token Secret by a plain create (see
// createOnce): AlreadyExists when one of its name exists.
func (r *StrategyReconciler) createToken(ctx context.Context, s *stratv1.Strategy) (types.UID, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	quiet := logr.NewContext(ctx, logr.Discard())
	created, err := r.createOnce(quiet, children.EventLoggerTokenSecret(s, hex.EncodeToString(b[:])), &corev1.Secret{})
	if err != nil {
		return "", err
	}
	ctrl.LoggerFrom(ctx).Info("Created the event logger's API token", "secret", created.GetName())
	return created.GetUID(), nil
}

// loggerDeploymentInputs are EventLoggerDeployment's arguments beyond the
// Strategy (the revision by its name, a digest of all it holds).
type loggerDeploymentInputs struct {
	image, revision, catalog string
	withRedis                bool
}

// networkPolicyInputs are EventLoggerNetworkPolicy's arguments beyond the
// Strategy.
type networkPolicyInputs struct {
	withRedis bool
	options   *children.NetworkPolicyOptions
}
