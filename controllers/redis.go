package controllers

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/children"
	"github.com/stratops/stratops/internal/lifecycle"
	"github.com/stratops/stratops/internal/redisprobe"
	"github.com/stratops/stratops/pkg/messaging"
)

// redisConfigFor is the operator's connection to a Strategy's Redis: the
// pods' settings (redisEnvFor), resolved with the Secrets' values.
func redisConfigFor(s *stratv1.Strategy, secrets []resolvedSecret) (messaging.RedisConfig, error) {
	return children.RedisEnv(s).Config(func(ref messaging.SecretKeyRef) ([]byte, error) {
		for _, sec := range secrets {
			if sec.ref.Name == ref.Name && sec.ref.Key == ref.Key {
				return sec.value, nil
			}
		}
		return nil, fmt.Errorf("secret %s key %s was not resolved", ref.Name, ref.Key)
	})
}

// reconcileRedis checks the Strategy's Redis and applies the verdict
// (lifecycle.DecideRedis) to RedisReady, status.redis and events. A full probe round
// runs when one is due (every healthCheckInterval, or at once while Redis
// is failing or the gate is closed); in between, the health read-out is
// the liveness check, so a healthy reconcile costs one round trip.
func (r *StrategyReconciler) reconcileRedis(ctx context.Context, sc *scope) (ctrl.Result, error) {
	s := sc.strategy
	key := client.ObjectKeyFromObject(s).String()
	facts := lifecycle.RedisFacts{
		Mode: s.Spec.Mode, LossPolicy: s.Spec.RedisLossPolicy, HasEngine: s.Spec.Engine != nil,
		Configured: s.Spec.Redis != nil, Interval: children.HealthCheckInterval(s),
		Prev: lifecycle.ConditionCopy(s, stratv1.ConditionRedisReady),
	}
	if s.Spec.Redis == nil {
		r.Clients.Release(key)
		s.Status.Redis = &stratv1.RedisStatus{InMemoryFallback: true}
		return r.applyRedisVerdict(sc, lifecycle.DecideRedis(facts)), nil
	}
	cfg, err := redisConfigFor(s, sc.secrets)
	if err != nil {
		return ctrl.Result{}, err
	}
	c, err := r.Clients.Acquire(key, cfg, r.NewRedisClient)
	if err != nil {
		return ctrl.Result{}, lifecycle.Stalled(stratv1.ReasonInvalidSpec, "spec.redis: %v", err)
	}
	logger, err := r.eventLoggerDeployment(ctx, s)
	if err != nil {
		return ctrl.Result{}, err
	}
	facts.LoggerRolledOut = logger != nil
	if logger != nil && logger.Annotations[children.AnnotationStrategyGeneration] == fmt.Sprint(s.Generation) {
		facts.BacktestBus = busOf(logger)
	}

	rs := &stratv1.RedisStatus{}
	if s.Status.Redis != nil {
		rs = s.Status.Redis.DeepCopy()
	}
	rs.Endpoint = cfg.String()
	lastProbe := time.Time{}
	if rs.LastProbeTime != nil {
		lastProbe = rs.LastProbeTime.Time
	}
	if t, ok := r.probes.Load(key); ok && t.(time.Time).After(lastProbe) {
		// A round this process ran whose status write did not land (a
		// conflict, say) still counts, and is what status reports.
		lastProbe = t.(time.Time)
		rs.LastProbeTime = &metav1.Time{Time: lastProbe}
	}
	// A process that has not written this Strategy's status yet (a new
	// leader) probes first, so that its first write reports its own round.
	_, written := r.statusWrites.Load(key)
	due := !written || lastProbe.IsZero() || time.Since(lastProbe) >= facts.Interval ||
		rs.ConsecutiveFailures > 0 || !facts.LoggerRolledOut ||
		!meta.IsStatusConditionTrue(s.Status.Conditions, stratv1.ConditionRedisReady) ||
		s.Status.ObservedGeneration != s.Generation
	if due {
		rep := redisprobe.Run(ctx, c, redisprobe.Options{
			Prefix: s.Spec.Redis.KeyPrefix, Timeout: cfg.DialTimeout + time.Second,
			Cluster: s.Spec.Redis.Topology == stratv1.TopologyCluster,
			Observe: func(res redisprobe.Result) {
				probeLatency.WithLabelValues(res.Name).Observe(res.Latency.Seconds())
				if !res.OK {
					probeFailures.WithLabelValues(res.Name, res.Reason).Inc()
				}
			},
		})
		now := metav1.Now()
		rs.LastProbeTime = &now
		r.probes.Store(key, now.Time)
		rs.ServerVersion, rs.Role = rep.ServerVersion, rep.Role
		rs.Probes = nil
		for _, p := range rep.Probes {
			rs.Probes = append(rs.Probes, stratv1.ProbeResult{Name: p.Name, OK: p.OK, Reason: p.Reason, Message: p.Message})
		}
		if failed, ok := rep.Failed(); ok {
			facts.Failed = &failed
		}
	} else {
		// Between probe rounds, the read-out says whether Redis answers.
		h, err := redisprobe.ReadHealth(ctx, c, sc.catalog, time.Now())
		if err != nil {
			facts.Failed = &redisprobe.Result{Name: "health-read-out", Reason: redisprobe.Classify(err), Message: err.Error()}
		} else {
			sc.health = &h
		}
	}
	if facts.Failed == nil {
		rs.ConsecutiveFailures = 0
	} else {
		rs.ConsecutiveFailures++
	}
	facts.ConsecutiveFailures = rs.ConsecutiveFailures

	v := lifecycle.DecideRedis(facts)
	rs.InMemoryFallback = v.State == lifecycle.RedisInMemory
	s.Status.Redis = rs
	if v.State != lifecycle.RedisInMemory {
		sc.redis = c
	}
	return r.applyRedisVerdict(sc, v), nil
}

// applyRedisVerdict puts the verdict in the scope, RedisReady and events.
func (r *StrategyReconciler) applyRedisVerdict(sc *scope, v lifecycle.RedisVerdict) ctrl.Result {
	sc.redisState = v.State
	lifecycle.SetCondition(sc.strategy, stratv1.ConditionRedisReady, v.Ready, v.Reason, v.Message)
	if e := v.Event; e != nil {
		r.event(sc.strategy, e.Type, e.Reason, "Probe", "%s", e.Note)
	}
	return ctrl.Result{RequeueAfter: v.RequeueAfter}
}

// eventLoggerDeployment returns the Strategy's event logger Deployment,
// nil when it was not rolled out yet (the gate applies until it is).
func (r *StrategyReconciler) eventLoggerDeployment(ctx context.Context, s *stratv1.Strategy) (*appsv1.Deployment, error) {
	d := &appsv1.Deployment{}
	err := r.Get(ctx, client.ObjectKey{Namespace: s.Namespace, Name: children.EventLoggerName(s)}, d)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return d, nil
}

// busOf tells which bus a logger Deployment was configured with.
func busOf(d *appsv1.Deployment) string {
	for _, c := range d.Spec.Template.Spec.Containers {
		for _, e := range c.Env {
			if e.Name == messaging.EnvRedisAddrs {
				return lifecycle.BusRedis
			}
		}
	}
	return lifecycle.BusMemory
}
