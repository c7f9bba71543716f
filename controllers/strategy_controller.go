package controllers

import (
	"context"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	"github.com/redis/go-redis/v9"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/redisprobe"
	"github.com/stratops/stratops/pkg/messaging"
)

// StrategyReconciler reconciles Strategy objects.
type StrategyReconciler struct {
	client.Client
	// APIReader reads from the API server, bypassing the cache: Secrets are
	// read through it, and children the cache does not hold.
	APIReader client.Reader
	Scheme    *runtime.Scheme
	Recorder  events.EventRecorder
	// EventLoggerImage is the event logger image used when a Strategy does
	// not name one: the operator's own image.
	EventLoggerImage string
	// MaxConcurrentReconciles bounds parallel reconciles. default: 4.
	MaxConcurrentReconciles int
	// Clients caches Redis clients across Strategies.
	Clients *redisprobe.Clients
	// NewRedisClient builds a Redis client. default: messaging.NewRedisClient.
	NewRedisClient func(messaging.RedisConfig) (redis.UniversalClient, error)
}

// reconcileState is what one reconcile of one Strategy learns on its way
// and hands from one step to the next.
type reconcileState struct {
	strategy    *stratv1.Strategy
	catalog     messaging.Catalog
	catalogJSON []byte
	secrets     []resolvedSecret
	configHash  string

	// redis is the client to the Strategy's Redis, nil when the strategy
	// runs without Redis (a backtest on memory).
	redis redis.UniversalClient
	// health is the read-out, when reconcileRedis already made it.
	health *redisprobe.Health
	// redisOK: Redis can be used; gated: Live, not rolled out, Redis not
	// proven; redisLost: Live, rolled out, Redis failed its probes
	// redisLossThreshold times in a row.
	redisOK, gated, redisLost bool
	// loggerListening: at least one event logger replica is available, so
	// what an engine publishes is logged.
	loggerListening bool
	// backtestDone is Succeeded or Failed once the backtest Job finished.
	backtestDone stratv1.StrategyPhase
	// requeueAfter, when set, asks for the next reconcile sooner than the
	// health check interval.
	requeueAfter time.Duration
}

// step is one sub-reconciler: it does one thing and sets only its own
// condition. A stalledError stops the steps and stalls the Strategy; any
// other error stops them and is retried with backoff.
type step func(ctx context.Context, st *reconcileState) error

// +kubebuilder:rbac:groups=stratops.dev,resources=strategies,verbs=get;list;watch
// +kubebuilder:rbac:groups=stratops.dev,resources=strategies/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=configmaps;services;serviceaccounts,verbs=get;list;watch;create;update
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;update
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch;create
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one Strategy's children in line with its spec and
// patches its status once, at the end, if it changed.
func (r *StrategyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	s := &stratv1.Strategy{}
	if err := r.Get(ctx, req.NamespacedName, s); err != nil {
		if apierrors.IsNotFound(err) {
			r.Clients.Release(req.String())
			forgetMetrics(req.Namespace, req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	// Children are garbage-collected through their owner references.
	if !s.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}

	base := s.DeepCopy()
	defer func() {
		err := r.patchStatus(ctx, base, s)
		if apierrors.IsConflict(err) {
			// This reconcile worked from a stale copy; its status must not
			// overwrite a newer one. The next reconcile starts afresh.
			result, retErr = ctrl.Result{RequeueAfter: 200 * time.Millisecond}, nil
			return
		}
		if err != nil {
			retErr = kerrors.NewAggregate([]error{retErr, err})
		}
	}()

	if s.Spec.Suspend {
		r.suspend(s)
		return ctrl.Result{}, nil
	}

	st := &reconcileState{strategy: s}
	var err error
	for _, run := range []step{r.reconcileSpec, r.reconcileRedis, r.reconcileEventLogger, r.reconcileEngine, r.reconcileHealth} {
		if err = run(ctx, st); err != nil {
			break
		}
	}
	if apierrors.IsConflict(err) {
		// The cache was behind a write; the next reconcile sees it. Not an
		// error worth a condition or an event.
		return ctrl.Result{RequeueAfter: 200 * time.Millisecond}, nil
	}
	r.summarize(s, st, err)
	if _, ok := asStalled(err); ok {
		// Retrying cannot help: a watch on the Strategy or the Secret brings
		// the next reconcile.
		return ctrl.Result{}, nil
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	// Redis and the channels and keys are checked at least every
	// healthCheckInterval, sooner while Redis is failing.
	after := healthCheckInterval(s)
	if st.requeueAfter > 0 {
		after = min(after, st.requeueAfter)
	}
	if s.Spec.Redis == nil || st.backtestDone != "" {
		return ctrl.Result{}, nil
	}
	return ctrl.Result{RequeueAfter: after}, nil
}

// reconcileSpec turns the spec into the catalog and resolves the Secrets
// it references.
func (r *StrategyReconciler) reconcileSpec(ctx context.Context, st *reconcileState) error {
	var err error
	if st.catalog, err = catalogFor(st.strategy); err != nil {
		return err
	}
	if st.catalogJSON, err = st.catalog.Marshal(); err != nil {
		return err
	}
	if st.secrets, err = r.resolveSecrets(ctx, st.strategy); err != nil {
		return err
	}
	st.configHash = configHash(st.catalogJSON, st.secrets)
	return nil
}

// reconcileEventLogger provisions the event logger and sets
// EventLoggerReady from its Deployment.
func (r *StrategyReconciler) reconcileEventLogger(ctx context.Context, st *reconcileState) error {
	s := st.strategy
	image := s.Spec.EventLogger.Image
	if image == "" {
		image = r.EventLoggerImage
	}
	replicas := eventLoggerReplicas(s)
	objs := []client.Object{desiredCatalogConfigMap(s, st.catalogJSON), desiredServiceAccount(s), desiredEventLoggerService(s)}
	if !st.gated {
		// The gate: a Live strategy's logger rolls out only once Redis
		// proved itself.
		objs = append(objs, desiredEventLoggerDeployment(s, image, replicas, st.configHash, st.redis != nil))
	}
	var dep *appsv1.Deployment
	for _, obj := range objs {
		live, err := r.ensure(ctx, s, obj)
		if err != nil {
			return err
		}
		if d, ok := live.(*appsv1.Deployment); ok {
			dep = d
		}
	}
	if dep == nil {
		s.Status.EventLogger = &stratv1.WorkloadStatus{Replicas: 0}
		setCondition(s, stratv1.ConditionEventLoggerReady, false, stratv1.ReasonGated, "The event logger waits for Redis to pass its probes")
		return nil
	}
	st.loggerListening = dep.Status.AvailableReplicas > 0
	ready, msg := deploymentAvailable(dep, replicas)
	s.Status.EventLogger = &stratv1.WorkloadStatus{Replicas: replicas, ReadyReplicas: dep.Status.AvailableReplicas}
	if ready {
		setCondition(s, stratv1.ConditionEventLoggerReady, true, stratv1.ReasonEventLoggerAvailable,
			fmt.Sprintf("Deployment %s has %d/%d replicas available", dep.Name, dep.Status.AvailableReplicas, replicas))
	} else {
		setCondition(s, stratv1.ConditionEventLoggerReady, false, stratv1.ReasonEventLoggerNotReady, msg)
	}
	return nil
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

// patchStatus patches the status once, and only when it changed. Figures
// that change on every read (a key's remaining TTL, a probe's time) are
// not a change on their own: they are refreshed when the probes run, every
// healthCheckInterval, or along with a change that matters.
func (r *StrategyReconciler) patchStatus(ctx context.Context, base, s *stratv1.Strategy) error {
	if equality.Semantic.DeepEqual(withoutVolatile(&base.Status), withoutVolatile(&s.Status)) &&
		(s.Status.Redis == nil || base.Status.Redis == nil ||
			equality.Semantic.DeepEqual(s.Status.Redis.LastProbeTime, base.Status.Redis.LastProbeTime)) {
		return nil
	}
	// Optimistic lock: conditions are a list a merge patch replaces whole,
	// so a patch computed from a stale copy must fail, not win.
	err := r.Status().Patch(ctx, s, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("patching status: %w", err)
	}
	return nil
}

// withoutVolatile is the status without the figures that tick on their own.
func withoutVolatile(st *stratv1.StrategyStatus) *stratv1.StrategyStatus {
	c := st.DeepCopy()
	for i := range c.Keys {
		c.Keys[i].TTLSeconds = nil
	}
	return c
}

func (r *StrategyReconciler) event(s *stratv1.Strategy, eventType, reason, action, note string, args ...any) {
	r.eventAbout(s, nil, eventType, reason, action, note, args...)
}

// eventAbout records an event about s that concerns a child: the events
// API folds events with the same regarding, related, reason and action into
// one series, so naming the child keeps "Created ConfigMap" and "Created
// Deployment" apart.
func (r *StrategyReconciler) eventAbout(s *stratv1.Strategy, related runtime.Object, eventType, reason, action, note string, args ...any) {
	if r.Recorder != nil {
		r.Recorder.Eventf(s, related, eventType, reason, action, note, args...)
	}
}

func ctrlLog(ctx context.Context) logr.Logger { return ctrl.LoggerFrom(ctx) }

// SetupWithManager registers the controller: it watches Strategies, the
// children they own, and the Secrets they reference (metadata only; the
// contents are read when needed, never cached).
func (r *StrategyReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(ctx, &stratv1.Strategy{}, secretRefIndex, indexSecretRefs); err != nil {
		return fmt.Errorf("indexing Strategies by Secret: %w", err)
	}
	if r.Clients == nil {
		r.Clients = NewRedisClients()
	}
	workers := r.MaxConcurrentReconciles
	if workers <= 0 {
		workers = 4
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&stratv1.Strategy{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Owns(&corev1.ConfigMap{}).
		Owns(&corev1.ServiceAccount{}).
		Owns(&corev1.Service{}).
		Owns(&appsv1.Deployment{}).
		Owns(&batchv1.Job{}).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.strategiesForSecret), builder.OnlyMetadata).
		WithOptions(controller.Options{MaxConcurrentReconciles: workers}).
		Named("strategy").
		Complete(r)
}
