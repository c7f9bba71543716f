package controllers

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/children"
	"github.com/stratops/stratops/internal/redisprobe"
	"github.com/stratops/stratops/pkg/messaging"
)

// The manager's metrics are served to authenticated, authorized clients
// only: it reviews each scraper's token and permission.
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// Options configure the Strategy controller. Every field's zero value
// means its default.
type Options struct {
	// EventLoggerImage is the event logger image for Strategies that name
	// none: the operator's own image. Required.
	EventLoggerImage string
	// MaxConcurrentReconciles bounds parallel reconciles. default: 4.
	MaxConcurrentReconciles int
	// Clients caches Redis clients across Strategies. default: a new cache.
	Clients *redisprobe.Clients
	// NewRedisClient builds a Redis client. default: messaging.NewRedisClient.
	NewRedisClient func(messaging.RedisConfig) (redis.UniversalClient, error)
	// StatusRefreshInterval bounds how often figures alone are written to
	// a Strategy's status. default: DefaultStatusRefreshInterval.
	StatusRefreshInterval time.Duration
	// NetworkPolicy: the cluster's facts the loggers' NetworkPolicies need
	// (--eventlogger-metrics-cidrs, --eventlogger-metrics-namespace-label).
	// default: the metrics port open to all.
	NetworkPolicy children.NetworkPolicyOptions
	// RevisionKeyNamespace is where the revision key's Secret lives
	// (RevisionKeySecret): the manager's namespace. default: "default".
	RevisionKeyNamespace string
	// AllowedRedisAddresses is the allow-list of the Redis addresses the
	// operator connects to (--allowed-redis-addresses). default: nil, any.
	AllowedRedisAddresses *redisprobe.AddressPolicy
}

// Scheme is what the controller reads and writes: the core kinds and
// Strategy.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(stratv1.AddToScheme(s))
	return s
}

// ownedKinds are the kinds of the children a Strategy owns: the manager's
// cache holds only those labelled as the operator's, and the controller
// watches each for changes to a Strategy's children.
func ownedKinds() []client.Object {
	return []client.Object{
		&corev1.ConfigMap{}, &corev1.ServiceAccount{}, &corev1.Service{},
		&appsv1.Deployment{}, &batchv1.Job{},
		&networkingv1.NetworkPolicy{}, &policyv1.PodDisruptionBudget{},
	}
}

// ManagerOptions completes a manager's options for the controller: its
// scheme, a cache that holds only the objects stratops made (of the kinds
// it owns, those labelled managed-by stratops, however many others the
// cluster has), and a client that never caches Secrets (a referenced key
// is read when its Secret's watched metadata changed: resolveSecrets).
func ManagerOptions(o ctrl.Options) ctrl.Options {
	o.Scheme = Scheme()
	ours := cache.ByObject{Label: labels.SelectorFromSet(labels.Set{children.LabelManagedBy: children.ManagerName})}
	o.Cache = cache.Options{ByObject: map[client.Object]cache.ByObject{}}
	for _, kind := range ownedKinds() {
		o.Cache.ByObject[kind] = ours
	}
	o.Cache.DefaultTransform = trimForCache
	// The schema the transform's extracts read is parsed on first use
	// (tens of milliseconds): here, not in the cache's first watch event,
	// which it would hold up past the reconcile that event should find.
	_, _ = appsv1ac.ExtractDeployment(&appsv1.Deployment{}, fieldManager)
	o.Client = client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}}
	return o
}

// ownerIndex indexes the children a reconcile lists (a Strategy's catalog
// ConfigMaps, its backtest Jobs) by the UID of the Strategy that controls
// them: a reconcile reads its own Strategy's, where a label selector on
// the cache walks every one of the namespace (at a thousand Strategies in
// one namespace, that walk was a twelfth of the manager's CPU).
const ownerIndex = ".metadata.controller"

// ownedBy selects a reconcile's own children of a kind, by ownerIndex.
func ownedBy(s *stratv1.Strategy) client.MatchingFields {
	return client.MatchingFields{ownerIndex: string(s.UID)}
}

func indexByOwner(o client.Object) []string {
	if ref := metav1.GetControllerOf(o); ref != nil && ref.Kind == "Strategy" && ref.APIVersion == stratv1.GroupVersion.String() {
		return []string{string(ref.UID)}
	}
	return nil
}

// Setup registers the Strategy controller with a manager made with
// ManagerOptions: the index of Strategies by the Secrets they reference,
// and the reconciler, which watches Strategies, the children they own, and
// those Secrets (metadata only; their contents are read when needed, never
// cached).
func Setup(ctx context.Context, mgr ctrl.Manager, o Options) (*StrategyReconciler, error) {
	if o.EventLoggerImage == "" {
		return nil, fmt.Errorf("controllers: Options.EventLoggerImage is required")
	}
	if o.MaxConcurrentReconciles <= 0 {
		o.MaxConcurrentReconciles = 4
	}
	if o.Clients == nil {
		o.Clients = NewRedisClients()
	}
	if o.NewRedisClient == nil {
		o.NewRedisClient = messaging.NewRedisClient
	}
	cs, err := kubernetes.NewForConfig(mgr.GetConfig())
	if err != nil {
		return nil, fmt.Errorf("controllers: a clientset: %w", err)
	}
	r := &StrategyReconciler{
		Clientset: cs,
		Client:    mgr.GetClient(), APIReader: mgr.GetAPIReader(), MetadataCache: mgr.GetCache(), Scheme: mgr.GetScheme(),
		Recorder: mgr.GetEventRecorder(children.ManagerName), EventLoggerImage: o.EventLoggerImage,
		Clients: o.Clients, NewRedisClient: o.NewRedisClient, StatusRefreshInterval: o.StatusRefreshInterval,
	}
	if o.RevisionKeyNamespace == "" {
		o.RevisionKeyNamespace = "default"
	}
	if r.revisionKey, err = revisionKey(ctx, mgr.GetAPIReader(), mgr.GetClient(), o.RevisionKeyNamespace); err != nil {
		return nil, fmt.Errorf("controllers: the revision key: %w", err)
	}
	r.allowedAddresses.Store(o.AllowedRedisAddresses)
	r.networkPolicy.Store(&o.NetworkPolicy)
	if err := watchStatusMetrics(mgr, r); err != nil {
		return nil, fmt.Errorf("controllers: the status series: %w", err)
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &stratv1.Strategy{}, secretRefIndex, indexSecretRefs); err != nil {
		return nil, fmt.Errorf("indexing Strategies by Secret: %w", err)
	}
	for _, kind := range []client.Object{&corev1.ConfigMap{}, &batchv1.Job{}} {
		if err := mgr.GetFieldIndexer().IndexField(ctx, kind, ownerIndex, indexByOwner); err != nil {
			return nil, fmt.Errorf("indexing %T by their Strategy: %w", kind, err)
		}
	}
	b := ctrl.NewControllerManagedBy(mgr).
		// A spec change, or an annotation (an approved revision).
		For(&stratv1.Strategy{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{})))
	for _, kind := range ownedKinds() {
		b = b.Owns(kind)
	}
	err = b.
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.strategiesForSecret), builder.OnlyMetadata).
		// A namespace's Pod Security labels judge its engines.
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.strategiesInNamespace), builder.OnlyMetadata,
			builder.WithPredicates(predicate.LabelChangedPredicate{})).
		WatchesRawSource(source.Channel(r.redisChecks().events, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: o.MaxConcurrentReconciles}).
		Named("strategy").
		Complete(r)
	if err != nil {
		return nil, err
	}
	return r, nil
}
