package controllers

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/redisprobe"
	"github.com/stratops/stratops/pkg/messaging"
)

// redisLossThreshold is how many probe rounds in a row must fail before a
// rolled-out Live strategy's Redis is declared lost: one passing error
// must not halt trading.
const redisLossThreshold = 3

// redisConfigFor is the operator's connection to a Strategy's Redis: the
// pods' settings (redisEnvFor), resolved with the Secrets' values.
func redisConfigFor(s *stratv1.Strategy, secrets []resolvedSecret) (messaging.RedisConfig, error) {
	return redisEnvFor(s).Config(func(ref messaging.SecretKeyRef) ([]byte, error) {
		for _, sec := range secrets {
			if sec.ref.Name == ref.Name && sec.ref.Key == ref.Key {
				return sec.value, nil
			}
		}
		return nil, fmt.Errorf("secret %s key %s was not resolved", ref.Name, ref.Key)
	})
}

func healthCheckInterval(s *stratv1.Strategy) time.Duration {
	if s.Spec.Redis != nil && s.Spec.Redis.HealthCheckInterval != nil && s.Spec.Redis.HealthCheckInterval.Duration > 0 {
		return s.Spec.Redis.HealthCheckInterval.Duration
	}
	return 30 * time.Second
}

// reconcileRedis decides, from probes, whether Redis can be trusted: the
// Live gate, Redis loss after rollout, and a backtest's in-memory fallback.
// A full probe round runs when one is due (every healthCheckInterval, or
// at once while Redis is failing or the gate is closed); in between, the
// health read-out is the liveness check, so a healthy reconcile costs a
// few round trips.
func (r *StrategyReconciler) reconcileRedis(ctx context.Context, st *reconcileState) error {
	s := st.strategy
	key := client.ObjectKeyFromObject(s).String()
	if s.Spec.Redis == nil {
		r.Clients.Release(key)
		s.Status.Redis = &stratv1.RedisStatus{InMemoryFallback: true}
		setCondition(s, stratv1.ConditionRedisReady, false, stratv1.ReasonInMemoryFallback,
			"No spec.redis: the backtest runs on the event logger's in-memory bus")
		return nil
	}
	cfg, err := redisConfigFor(s, st.secrets)
	if err != nil {
		return err
	}
	build := r.NewRedisClient
	if build == nil {
		build = messaging.NewRedisClient
	}
	c, err := r.Clients.Acquire(key, cfg, build)
	if err != nil {
		return stalled(stratv1.ReasonInvalidSpec, "spec.redis: %v", err)
	}
	st.redis = c
	prev := s.Status.Redis
	if prev == nil {
		prev = &stratv1.RedisStatus{}
	}
	rs := prev.DeepCopy()
	rs.Endpoint = cfg.String()
	rs.InMemoryFallback = false

	logger, err := r.eventLogger(ctx, s)
	if err != nil {
		return err
	}
	rolledOut := logger != nil
	interval := healthCheckInterval(s)
	due := prev.LastProbeTime == nil || time.Since(prev.LastProbeTime.Time) >= interval ||
		prev.ConsecutiveFailures > 0 || !rolledOut ||
		!meta.IsStatusConditionTrue(s.Status.Conditions, stratv1.ConditionRedisReady) ||
		s.Status.ObservedGeneration != s.Generation
	ok := true
	var failed redisprobe.Result
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
		rs.ServerVersion, rs.Role = rep.ServerVersion, rep.Role
		rs.Probes = nil
		for _, p := range rep.Probes {
			rs.Probes = append(rs.Probes, stratv1.ProbeResult{Name: p.Name, OK: p.OK, Reason: p.Reason, Message: p.Message})
		}
		failed, ok = rep.Failed()
		ok = !ok
	} else {
		// Between probe rounds, the read-out says whether Redis answers.
		h, err := redisprobe.ReadHealth(ctx, c, st.catalog, time.Now())
		if err != nil {
			ok = false
			failed = redisprobe.Result{Name: "health-read-out", Reason: redisprobe.Classify(err), Message: err.Error()}
		} else {
			st.health = &h
		}
	}
	if ok {
		rs.ConsecutiveFailures = 0
	} else {
		rs.ConsecutiveFailures++
	}
	s.Status.Redis = rs
	st.redisOK = ok

	if s.Spec.Mode == stratv1.ModeBacktest {
		// The bus is chosen when this generation rolls out and kept: a
		// logger switched between Redis and memory would restart and lose
		// what it holds. A logger on Redis rides out an outage itself.
		onMemory := !ok
		if logger != nil && logger.Annotations[annotationStrategyGeneration] == fmt.Sprint(s.Generation) {
			onMemory = !usesRedis(logger)
		}
		rs.InMemoryFallback = onMemory
		switch {
		case onMemory:
			st.redis = nil
			msg := "the backtest runs on the in-memory bus, chosen at rollout because Redis failed its probes"
			if !ok {
				msg = fmt.Sprintf("Redis probe %s failed (%s): %s; the backtest runs on the in-memory bus", failed.Name, failed.Reason, failed.Message)
			}
			setCondition(s, stratv1.ConditionRedisReady, false, stratv1.ReasonInMemoryFallback, msg)
		case ok:
			setCondition(s, stratv1.ConditionRedisReady, true, stratv1.ReasonSucceeded, "Redis passed every probe")
		default:
			st.requeueAfter = min(2*time.Second, interval)
			setCondition(s, stratv1.ConditionRedisReady, false, stratv1.ReasonRedisNotReady,
				fmt.Sprintf("Redis probe %s failed (%s): %s; the backtest's logger keeps its events until Redis returns", failed.Name, failed.Reason, failed.Message))
		}
		return nil
	}

	// Live.
	was := conditionCopy(s, stratv1.ConditionRedisReady)
	switch {
	case ok:
		setCondition(s, stratv1.ConditionRedisReady, true, stratv1.ReasonSucceeded, "Redis passed every probe")
		if !rolledOut {
			r.event(s, corev1.EventTypeNormal, "GatePassed", "Probe", "Redis passed every probe: rolling out")
		} else if was != nil && was.Reason == stratv1.ReasonRedisLost {
			r.event(s, corev1.EventTypeNormal, "RedisRecovered", "Probe", "Redis passed every probe again")
		}
	case !rolledOut:
		st.gated = true
		st.requeueAfter = min(time.Duration(1<<min(rs.ConsecutiveFailures, 6))*time.Second, interval)
		msg := fmt.Sprintf("Live strategy gated: Redis probe %s failed (%s): %s", failed.Name, failed.Reason, failed.Message)
		if was == nil || was.Message != msg {
			r.event(s, corev1.EventTypeWarning, "GateFailed", "Probe", "%s", msg)
		}
		setCondition(s, stratv1.ConditionRedisReady, false, stratv1.ReasonRedisNotReady, msg)
	case rs.ConsecutiveFailures < redisLossThreshold:
		// Not lost yet: one failure is not an outage.
		st.redisOK = true
		st.requeueAfter = min(2*time.Second, interval)
		setCondition(s, stratv1.ConditionRedisReady, true, stratv1.ReasonSucceeded,
			fmt.Sprintf("Redis probe %s failed (%s): %d of %d failed rounds before Redis is declared lost",
				failed.Name, failed.Reason, rs.ConsecutiveFailures, redisLossThreshold))
	default:
		st.redisLost = true
		st.requeueAfter = min(2*time.Second, interval)
		// The message stays the same for the whole outage (the running count
		// is status.redis.consecutiveFailures), so alerts see one change.
		msg := fmt.Sprintf("Redis lost after %d consecutive failed probe rounds: probe %s failed (%s): %s",
			redisLossThreshold, failed.Name, failed.Reason, failed.Message)
		if was == nil || was.Reason != stratv1.ReasonRedisLost {
			action := "policy Alert: the engine keeps running"
			if s.Spec.RedisLossPolicy != stratv1.RedisLossAlert {
				action = "policy Halt: the engine is scaled to zero"
			}
			if s.Spec.Engine == nil {
				action = "policy " + string(s.Spec.RedisLossPolicy) + " (no engine to act on)"
			}
			r.event(s, corev1.EventTypeWarning, stratv1.ReasonRedisLost, "Probe", "%s; %s", msg, action)
		}
		setCondition(s, stratv1.ConditionRedisReady, false, stratv1.ReasonRedisLost, msg)
	}
	return nil
}

// eventLogger returns the Strategy's event logger Deployment, nil when it
// was not rolled out yet (the gate applies until it is).
func (r *StrategyReconciler) eventLogger(ctx context.Context, s *stratv1.Strategy) (*appsv1.Deployment, error) {
	d := &appsv1.Deployment{}
	err := r.Get(ctx, client.ObjectKey{Namespace: s.Namespace, Name: eventLoggerName(s)}, d)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return d, nil
}

// usesRedis tells whether a logger Deployment was configured with Redis.
func usesRedis(d *appsv1.Deployment) bool {
	for _, c := range d.Spec.Template.Spec.Containers {
		for _, e := range c.Env {
			if e.Name == messaging.EnvRedisAddrs {
				return true
			}
		}
	}
	return false
}
