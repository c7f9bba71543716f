package controllers

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/children"
	"github.com/stratops/stratops/internal/lifecycle"
	"github.com/stratops/stratops/internal/redisprobe"
	"github.com/stratops/stratops/pkg/messaging"
)

// StrategyReconciler reconciles Strategy objects. Setup makes it.
type StrategyReconciler struct {
	client.Client
	// APIReader reads from the API server, bypassing the cache: Secrets are
	// read through it, and children the cache does not hold.
	APIReader client.Reader
	// MetadataCache reads the metadata the manager watches: Secrets' (the
	// client reads Secrets from the API server, never from a cache) and
	// Namespaces' (their Pod Security labels). default: APIReader.
	MetadataCache client.Reader
	// Clientset runs what controller-runtime's client does not return: a
	// dry-run apply's result.
	Clientset        kubernetes.Interface
	Scheme           *runtime.Scheme
	Recorder         events.EventRecorder
	EventLoggerImage string
	Clients          *redisprobe.Clients
	NewRedisClient   func(messaging.RedisConfig) (redis.UniversalClient, error)
	// StatusRefreshInterval: see DefaultStatusRefreshInterval.
	StatusRefreshInterval time.Duration

	// statusWrites holds, per Strategy, when this process last wrote its
	// status.
	statusWrites sync.Map
	// inShape holds, per child, the resourceVersion at which it was last
	// found in shape, with the digest of what was wanted (see ensure).
	inShape sync.Map // childKey: shapeMark or builtMark
	// podSecurityPassed holds, per Strategy, the revisions and Pod
	// Security levels its engine's pod passed (see judgePodSecurity).
	podSecurityPassed sync.Map
	// catalogs holds, per Strategy, its catalog and the digest of its JSON
	// for one generation (the catalog is the spec's alone): not made again
	// each reconcile.
	catalogs sync.Map
	// secretReads holds, per Strategy and referenced Secret key, the
	// value last read (resolveSecrets).
	secretReads sync.Map
	// loggerRevisions holds, per Strategy, its logger's revision with what
	// it was made from (loggerRevision).
	loggerRevisions sync.Map
	// said remembers the events said once per process (a held revision,
	// a password sent without TLS in one generation).
	said onceMemo
	// networkPolicy holds the cluster's facts the loggers' NetworkPolicies
	// need (the manager's flags); nil: none.
	networkPolicy atomic.Pointer[children.NetworkPolicyOptions]
	// allowedAddresses is the allow-list of Redis addresses; nil: any.
	allowedAddresses atomic.Pointer[redisprobe.AddressPolicy]
	// revisionKey keys the HMACs of Secret values in revisions
	// (RevisionKeySecret).
	revisionKey []byte
	// checks are the Strategies' Redis checks, run off the workers.
	checks     *redisChecks
	checksOnce sync.Once
}

// scope is one reconcile of one Strategy: what each step learns, for the
// steps after it and for the summary. Each field says which step sets it.
type scope struct {
	// strategy is the Strategy; the steps write its status. base is the
	// Strategy as read, for the status patch: the cache's own object,
	// never changed.
	strategy, base *stratv1.Strategy

	// Set by reconcileSpec.
	catalog    messaging.Catalog
	catalogSum [sha256.Size]byte
	secrets    []resolvedSecret

	// Set by reconcileEventLogger: the logger token's Secret UID (a new
	// token is a new revision), and the current revision's catalog.
	tokenUID  string
	catalogCM string

	// Set by reconcileRedis, or by settleRedis when reconcileRedis left
	// its check in flight (settle, until then): the Redis verdict; redis
	// is the client to the Strategy's Redis, nil when it runs without
	// Redis (a backtest on memory); health is the read-out when the check
	// made one.
	redisState lifecycle.RedisState
	redis      redis.UniversalClient
	health     *redisprobe.Health
	settle     func() (ctrl.Result, error)
	// probeEvent is the verdict's event (the gate passed, Redis lost or
	// recovered), recorded by finish once the status that says so is
	// written: a reconcile that worked from a stale copy of the Strategy
	// does not say it a second time.
	probeEvent *lifecycle.Event

	// Set by reconcileEventLogger: at least one logger replica is
	// available, so what an engine publishes is logged.
	loggerListening bool

	// Set by reconcileEngine: Succeeded or Failed once the backtest Job
	// finished; engineStopped when the Live engine is stopped on purpose.
	backtestDone  stratv1.StrategyPhase
	engineStopped bool
}

// step is one sub-reconciler: it does one thing, sets only its own
// condition, and says when it wants to run again. An error stops the
// steps; its type says what follows (see finish): a lifecycle.Stalled
// stalls the Strategy, a lifecycle.Waiting writes nothing and comes back,
// any other is retried with backoff.
type step func(ctx context.Context, sc *scope) (ctrl.Result, error)

// +kubebuilder:rbac:groups=stratops.dev,resources=strategies,verbs=get;list;watch
// +kubebuilder:rbac:groups=stratops.dev,resources=strategies/status,verbs=get;update;patch
// Children are written by server-side apply: a patch, and a create when
// the apply makes the object; those made once and never changed (a
// catalog, a backtest Job, a logger's token) by a plain create.
// +kubebuilder:rbac:groups="",resources=configmaps;services;serviceaccounts,verbs=get;list;watch;create;patch
// Catalog ConfigMaps of past revisions that no pod mounts are deleted (only
// the Strategy's own); the ReplicaSets say which ones still run pods.
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=delete
// +kubebuilder:rbac:groups=apps,resources=replicasets,verbs=get;list
// The engine of a removed spec.engine (or of the other mode) is deleted,
// once the owner reference says it is this Strategy's.
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch;create;delete
// The Live engine's PodDisruptionBudget: made with it, deleted with it.
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;patch;delete
// Secrets: read when a Strategy references them (consent label required);
// created once for each logger's API token, which the Strategy owns.
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// The job controller says a backtest's pod was refused only in an event.
// +kubebuilder:rbac:groups="",resources=events,verbs=list

// Reconcile brings one Strategy's children in line with its spec. The
// whole flow: read the Strategy; the steps in order (spec, Redis, event
// logger, the Redis verdict, engine, catalogs, health), each returning
// when it wants to run again; then, on every way out, one summary of the
// conditions and one status patch.
func (r *StrategyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	// The cache's own object is the base (read, never changed); the steps
	// change one deep copy of it.
	cached := &stratv1.Strategy{}
	if err := r.Get(ctx, req.NamespacedName, cached, &client.GetOptions{UnsafeDisableDeepCopy: ptr.To(true)}); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	// Children are garbage-collected through their owner references.
	if !cached.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	s := cached.DeepCopy()
	sc := &scope{strategy: s, base: cached}
	defer func() { result, retErr = r.finish(ctx, sc, result, retErr) }()
	// A requested reconcile (kubectl stratops reconcile) is this one.
	if v := s.Annotations[stratv1.AnnotationReconcileRequestedAt]; v != "" {
		s.Status.LastHandledReconcileAt = v
	}

	if s.Spec.Suspend {
		r.suspend(s)
		return ctrl.Result{}, nil
	}
	for _, run := range []step{r.reconcileSpec, r.reconcileRedis, r.reconcileEventLogger, r.settleRedis, r.reconcileEngine, r.reconcileCatalogs, r.reconcileHealth} {
		res, err := run(ctx, sc)
		result = soonest(result, res)
		if err != nil {
			return result, err
		}
	}
	return result, nil
}

// metadataCache reads the metadata the manager watches (Secrets',
// Namespaces').
func (r *StrategyReconciler) metadataCache() client.Reader {
	if r.MetadataCache != nil {
		return r.MetadataCache
	}
	return r.APIReader
}

// redisChecks returns the reconciler's check state, made on first use.
func (r *StrategyReconciler) redisChecks() *redisChecks {
	r.checksOnce.Do(func() {
		if r.checks == nil {
			r.checks = newRedisChecks()
		}
	})
	return r.checks
}

// forget drops what this process remembers of a deleted Strategy.
func (r *StrategyReconciler) forget(nn types.NamespacedName) {
	key := nn.String()
	r.Clients.Release(key)
	r.statusWrites.Delete(key)
	r.catalogs.Delete(key)
	r.loggerRevisions.Delete(nn)
	r.redisChecks().forget(key)
	r.said.forget(key)
	r.inShape.Range(func(k, _ any) bool {
		if k.(childKey).strategy == nn {
			r.inShape.Delete(k)
		}
		return true
	})
	r.secretReads.Range(func(k, _ any) bool {
		if k.(secretReadKey).strategy == nn {
			r.secretReads.Delete(k)
		}
		return true
	})
	r.podSecurityPassed.Range(func(k, _ any) bool {
		if strings.HasPrefix(k.(string), key+"|") {
			r.podSecurityPassed.Delete(k)
		}
		return true
	})
}

// finish summarizes what the steps did into the conditions and patches
// the status, on every way out of Reconcile, and turns the steps' error
// into the result the controller acts on, by its type.
func (r *StrategyReconciler) finish(ctx context.Context, sc *scope, result ctrl.Result, err error) (ctrl.Result, error) {
	s := sc.strategy
	if sc.settle != nil {
		// A step stopped the reconcile before settleRedis: the verdict
		// still goes in the conditions (and the check is waited for, so
		// that its end is seen).
		res, serr := r.settleRedis(ctx, sc)
		if err == nil {
			result, err = soonest(result, res), serr
		}
	}
	if w, waiting := lifecycle.AsWaiting(err); waiting {
		// Nothing is written: the verdict's event is said now.
		r.recordProbeEvent(sc)
		return ctrl.Result{RequeueAfter: w.RequeueAfter}, nil
	}
	conflict := apierrors.IsConflict(err)
	if conflict {
		// The cache was behind a write; the next reconcile sees it. Not an
		// error worth a condition or an event.
		err, result = nil, ctrl.Result{RequeueAfter: 200 * time.Millisecond}
	}
	var changes []lifecycle.Event
	if !s.Spec.Suspend {
		changes = r.summarize(s, sc, err)
	}
	if perr := r.patchStatus(ctx, sc.base, s); apierrors.IsConflict(perr) {
		// This reconcile worked from a stale copy; its status must not
		// overwrite a newer one, nor its events repeat what the newer one
		// said. The next reconcile starts afresh.
		return ctrl.Result{RequeueAfter: 200 * time.Millisecond}, nil
	} else if perr != nil {
		return ctrl.Result{}, kerrors.NewAggregate([]error{err, perr})
	}
	r.recordProbeEvent(sc)
	r.recordEvents(s, changes, "Reconcile")
	if st, stalled := lifecycle.AsStalled(err); stalled {
		// Retrying cannot help: a watch on the Strategy or the Secret
		// brings the next reconcile (or, for a stall that can end on its
		// own, its RetryAfter).
		return ctrl.Result{RequeueAfter: st.RetryAfter}, nil
	}
	switch {
	case err != nil:
		return ctrl.Result{}, err
	case sc.backtestDone != "":
		// A finished backtest has nothing left to check.
		return ctrl.Result{}, nil
	}
	return result, nil
}

// soonest merges two results into the one that runs first.
func soonest(a, b ctrl.Result) ctrl.Result {
	switch {
	case a.RequeueAfter == 0:
		return b
	case b.RequeueAfter == 0:
		return a
	}
	return ctrl.Result{RequeueAfter: min(a.RequeueAfter, b.RequeueAfter)}
}

// DefaultStatusRefreshInterval bounds how often figures alone (message
// counts, lags, the last message and probe times, TTLs) are written to a
// Strategy's status; metrics carry them always.
const DefaultStatusRefreshInterval = 5 * time.Minute

// patchStatus patches the status once, and only when it should: at once
// when its meaning changed (phase, a condition, a reason, a channel's or
// key's health, a probe result, the failure count), and when only figures
// changed, at most once per StatusRefreshInterval. An idle Strategy costs
// no write; one with steady traffic one write per interval.
func (r *StrategyReconciler) patchStatus(ctx context.Context, base, s *stratv1.Strategy) error {
	// Before a refresh is due only a change of meaning is written, so only
	// the meaning is compared (a healthy Strategy's figures move every
	// read-out: the whole status differs each time).
	key := client.ObjectKeyFromObject(s).String()
	if last, ok := r.statusWrites.Load(key); ok && time.Since(last.(time.Time)) < r.statusRefreshInterval() {
		if !meaningfulChange(&base.Status, &s.Status) {
			return nil
		}
	} else if statusEqual(&base.Status, &s.Status) {
		return nil
	}
	// Optimistic lock: conditions are a list a merge patch replaces whole,
	// so a patch computed from a stale copy must fail, not win.
	err := r.Status().Patch(ctx, s, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("patching status: %w", err)
	}
	r.statusWrites.Store(key, time.Now())
	return nil
}

func (r *StrategyReconciler) statusRefreshInterval() time.Duration {
	if r.StatusRefreshInterval > 0 {
		return r.StatusRefreshInterval
	}
	return DefaultStatusRefreshInterval
}

// event records an event about the Strategy: one per outcome a person
// acts on (see the README's event table), never one per child.
func (r *StrategyReconciler) event(s *stratv1.Strategy, eventType, reason, action, note string, args ...any) {
	if r.Recorder != nil {
		r.Recorder.Eventf(s, nil, eventType, reason, action, note, args...)
	}
}
