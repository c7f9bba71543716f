package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
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
// (lifecycle.DecideRedis) to RedisReady, status.redis and events. A full
// probe round runs when one is due (see nextCheck); in between, the health
// read-out is the liveness check, so a healthy reconcile costs one round
// trip. Either runs off the worker (checks.go). A read-out between rounds
// of a rolled-out strategy cannot change what the event logger's step
// does (it reads only the state's class: see settleable): the verdict
// waits for it in settleRedis, after that step, so that the round trip
// and the step overlap.
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
	if err := r.allowAddresses(ctx, s, &cfg); err != nil {
		r.Clients.Release(key)
		return ctrl.Result{}, err
	}
	setting := redisprobe.SettingKey(cfg)
	c, err := r.Clients.AcquireSetting(key, setting, cfg, r.NewRedisClient)
	if err != nil {
		return ctrl.Result{}, lifecycle.Stall(stratv1.ReasonInvalidSpec, "spec.redis: %v", err)
	}
	if err := r.loggerFacts(ctx, s, &facts); err != nil {
		return ctrl.Result{}, err
	}
	snap, pending := r.checkRedis(sc, c, cfg, setting, facts)
	if pending == nil {
		return r.redisVerdict(sc, c, cfg, facts, snap)
	}
	if state, ok := settleable(snap, pending, facts); ok {
		// What the event logger's step reads before the verdict: the
		// state's class (gated, in memory or neither) and the round's
		// probes, which a read-out leaves as they are.
		sc.redisState, sc.redis = state, nil
		if state != lifecycle.RedisInMemory {
			sc.redis = c
		}
		s.Status.Redis = redisStatus(s, cfg, snap)
		sc.settle = func() (ctrl.Result, error) { return r.redisVerdict(sc, c, cfg, facts, pending.wait()) }
		return ctrl.Result{}, nil
	}
	return r.redisVerdict(sc, c, cfg, facts, pending.wait())
}

// settleable says whether a check in flight cannot change what the event
// logger's step does, and the state that step may assume meanwhile: a
// read-out (no round: the probes and the prefix's owner stay), after a
// check ended in this process, of a Live strategy whose logger rolled out
// (the gate is behind it: every verdict is neither gated nor in memory)
// or of a backtest whose logger rolled out at this generation (its bus,
// chosen then, says whether it runs in memory).
func settleable(snap checkSnapshot, p *pendingCheck, f lifecycle.RedisFacts) (lifecycle.RedisState, bool) {
	if p.round || !snap.checked || snap.conflict != nil || !f.LoggerRolledOut {
		return "", false
	}
	switch {
	case f.Mode == stratv1.ModeLive:
		return lifecycle.RedisOK, true
	case f.BacktestBus == lifecycle.BusMemory:
		return lifecycle.RedisInMemory, true
	case f.BacktestBus == lifecycle.BusRedis:
		return lifecycle.RedisOK, true
	}
	return "", false
}

// settleRedis applies the verdict of a check reconcileRedis left in flight
// (see settleable); nothing when it applied it itself.
func (r *StrategyReconciler) settleRedis(_ context.Context, sc *scope) (ctrl.Result, error) {
	settle := sc.settle
	if settle == nil {
		return ctrl.Result{}, nil
	}
	sc.settle = nil
	return settle()
}

// redisVerdict applies what the checks found: the verdict, status.redis
// and the client the next steps use.
func (r *StrategyReconciler) redisVerdict(sc *scope, c redis.UniversalClient, cfg messaging.RedisConfig, facts lifecycle.RedisFacts, snap checkSnapshot) (ctrl.Result, error) {
	s := sc.strategy
	if !snap.checked { // the first check of this process has not ended; its end brings the next reconcile
		return ctrl.Result{}, &lifecycle.Waiting{Reason: "FirstRedisCheck", RequeueAfter: time.Second}
	}
	rs := redisStatus(s, cfg, snap)
	if o := snap.conflict; o != nil {
		// Before anything rolls out, and whatever Redis says otherwise.
		return ctrl.Result{}, prefixConflict(s, cfg, *o, facts.Interval)
	}
	if f := snap.failed; f != nil {
		facts.Failed = &lifecycle.Failure{Probe: f.Name, Reason: f.Reason, Message: f.Message}
	} else {
		sc.health = snap.health
	}
	facts.ConsecutiveFailures, facts.FailingSince, facts.Now = snap.failures, snap.failingSince, time.Now()
	if lt := s.Spec.Redis.LossThreshold; lt != nil {
		facts.LossThreshold = lt.Duration
	}
	v := lifecycle.DecideRedis(facts)
	rs.InMemoryFallback = v.State == lifecycle.RedisInMemory
	s.Status.Redis = rs
	sc.redis = nil
	if v.State != lifecycle.RedisInMemory {
		sc.redis = c
	}
	return r.applyRedisVerdict(sc, v), nil
}

// prefixConflict stalls a Strategy whose prefix another one owns: two
// Strategies on one prefix would mix their channels and history. The
// claim lapses on its own, so the stall is checked again each interval.
func prefixConflict(s *stratv1.Strategy, cfg messaging.RedisConfig, owner redisprobe.Owner, interval time.Duration) *lifecycle.Stalled {
	stall := lifecycle.Stall(stratv1.ReasonPrefixConflict,
		"spec.redis.keyPrefix %q on %s db %d is owned by Strategy %s: two Strategies on one Redis, database and prefix share channels, history and stats; give this one another keyPrefix (the claim lapses %s after its owner stops renewing it)",
		s.Spec.Redis.KeyPrefix, cfg.String(), cfg.DB, owner.String(), ownerTTL(interval))
	stall.RetryAfter = interval
	return stall
}

// loggerFacts adds what the event logger's Deployment says to the facts:
// whether it rolled out (the gate holds until it does), the bus a
// backtest's logger rolled out with, and the logger's own view of Redis,
// its ready replicas, from the cache: no request, and no path from the
// operator to Redis or to the pod.
func (r *StrategyReconciler) loggerFacts(ctx context.Context, s *stratv1.Strategy, f *lifecycle.RedisFacts) error {
	logger, err := r.eventLoggerDeployment(ctx, s)
	if err != nil || logger == nil {
		return err
	}
	f.LoggerRolledOut = true
	f.LoggerReady, f.LoggerReplicas = logger.Status.ReadyReplicas, logger.Status.Replicas
	if logger.Annotations[children.AnnotationStrategyGeneration] == fmt.Sprint(s.Generation) {
		f.BacktestBus = busOf(logger)
	}
	return nil
}

// checkRedis starts the check that is due, if none runs and none ended
// unused (the state is kept per connection setting: SettingKey(cfg)). It returns what the checks found so far and, when it started
// one, the check to wait for (pendingCheck.wait); else it marks what they
// found as used.
func (r *StrategyReconciler) checkRedis(sc *scope, c redis.UniversalClient, cfg messaging.RedisConfig, setting string, facts lifecycle.RedisFacts) (checkSnapshot, *pendingCheck) {
	s := sc.strategy
	nn := client.ObjectKeyFromObject(s)
	var failures int32
	var since time.Time
	if rs := s.Status.Redis; rs != nil {
		failures = rs.ConsecutiveFailures
		if rs.FailingSince != nil {
			since = rs.FailingSince.Time
		}
	}
	st := r.redisChecks().state(nn, setting, failures, since)
	snap := st.snapshot()
	round, readOut := nextCheck(snap, s, facts)
	if snap.fresh || snap.running || (!round && !readOut) {
		st.use()
		return snap, nil
	}
	catalog, cluster, prefix := sc.catalog, s.Spec.Redis.Topology == stratv1.TopologyCluster, s.Spec.Redis.KeyPrefix
	probeTimeout := max(cfg.DialTimeout, time.Second) + time.Second
	me := redisprobe.Owner{UID: string(s.UID), Namespace: s.Namespace, Name: s.Name}
	rolledOut, interval := facts.LoggerRolledOut, facts.Interval
	p := r.redisChecks().start(nn, st, round, checkDeadline(probeTimeout), func(ctx context.Context) checkOutcome {
		out := runCheck(ctx, c, round, rolledOut, catalog, redisprobe.Options{Prefix: prefix, Timeout: probeTimeout, Cluster: cluster, Observe: observeProbe})
		if round && out.failed == nil {
			claimPrefix(ctx, c, prefix, me, ownerTTL(interval), rolledOut, &out)
		}
		return out
	})
	if p == nil { // another reconcile's check is in flight
		snap = st.snapshot()
		st.use()
		return snap, nil
	}
	return snap, p
}

// redisStatus is status.redis as the checks left it: the endpoint, the
// last round's probes, and the failures in a row.
func redisStatus(s *stratv1.Strategy, cfg messaging.RedisConfig, snap checkSnapshot) *stratv1.RedisStatus {
	rs := &stratv1.RedisStatus{}
	if s.Status.Redis != nil {
		rs = s.Status.Redis.DeepCopy()
	}
	rs.Endpoint = cfg.String()
	if rep := snap.round; rep != nil {
		if rep.Addr != "" && s.Spec.Redis.Topology == stratv1.TopologySentinel {
			// The master the Sentinels name now: it changes with a failover.
			rs.Endpoint = fmt.Sprintf("%s (master %s, via Sentinels %s)", rep.Addr, s.Spec.Redis.SentinelMasterName, strings.Join(s.Spec.Redis.Addresses, ","))
		}
		rs.LastProbeTime = &metav1.Time{Time: snap.roundAt}
		rs.ServerVersion, rs.Role = rep.ServerVersion, rep.Role
		rs.Probes = nil
		for _, p := range rep.Probes {
			rs.Probes = append(rs.Probes, stratv1.ProbeResult{Name: p.Name, OK: p.OK, Reason: p.Reason, Message: p.Message})
		}
	}
	rs.ConsecutiveFailures = snap.failures
	rs.FailingSince = nil
	if snap.failures > 0 && !snap.failingSince.IsZero() {
		rs.FailingSince = &metav1.Time{Time: snap.failingSince}
	}
	return rs
}

// allowAddresses holds the Strategy's Redis to the operator's allow-list:
// an address outside it stalls the Strategy before any connection, and
// the client's dialer checks every address it dials (servers that
// Sentinel or Cluster discovery returns too). An address whose name does
// not resolve now is left to the probes, which report it.
func (r *StrategyReconciler) allowAddresses(ctx context.Context, s *stratv1.Strategy, cfg *messaging.RedisConfig) error {
	policy := r.allowedAddresses.Load()
	if policy == nil {
		return nil
	}
	field := "spec.redis.address"
	if len(s.Spec.Redis.Addresses) > 0 {
		field = "spec.redis.addresses"
	}
	for _, a := range cfg.Addrs {
		if _, err := policy.Check(ctx, a); redisprobe.IsAddressNotAllowed(err) {
			return lifecycle.Stall(stratv1.ReasonAddressNotAllowed, "%s: %v", field, err)
		}
	}
	cfg.Dialer = policy.Dialer(max(cfg.DialTimeout, time.Second))
	return nil
}

// nextCheck says which check is due: a full probe round every
// healthCheckInterval, and a health read-out in between. While Redis
// fails, the gate is closed or the spec changed, only a round can pass
// Redis, so no read-out runs: a round at once, then backing off with the
// failures (1s, 2s, 4s, ... up to the interval), so that a Redis that
// fails slowly is not probed back to back.
func nextCheck(snap checkSnapshot, s *stratv1.Strategy, f lifecycle.RedisFacts) (round, readOut bool) {
	if snap.roundAt.IsZero() {
		return true, false
	}
	urgent := snap.failures > 0 || !f.LoggerRolledOut ||
		!meta.IsStatusConditionTrue(s.Status.Conditions, stratv1.ConditionRedisReady) ||
		s.Status.ObservedGeneration != s.Generation
	if !urgent {
		due := time.Since(snap.roundAt) >= f.Interval
		return due, !due
	}
	return time.Since(snap.roundAt) >= lifecycle.RetryGap(snap.failures, f.Interval), false
}

// checkDeadline is a Strategy's deadline for one check: a probe round
// whose first probe hangs (each probe has probeTimeout), then a read-out.
func checkDeadline(probeTimeout time.Duration) time.Duration {
	return 2*probeTimeout + 2*time.Second
}

// runCheck is one check: a probe round when round is set, then, if Redis
// answered it, the health read-out.
//
// Once the logger runs, a refusal of the logger's own commands (the
// commands probe: an ACL narrower than the logger needs, a key of the
// wrong type) is not a loss of Redis: Redis answers and takes what the
// engine sends, so the round's report keeps it (EventLoggerReady says it)
// and the engine is not halted for it. Before rollout it closes the gate.
func runCheck(ctx context.Context, c redis.UniversalClient, round, rolledOut bool, cat messaging.Catalog, o redisprobe.Options) checkOutcome {
	var out checkOutcome
	if round {
		rep := redisprobe.Run(ctx, c, o)
		out.round = &rep
		if failed, ok := rep.Failed(); ok && (!rolledOut || failed.Name != redisprobe.ProbeCommands) {
			out.failed = &failed
			return out
		}
	}
	h, err := redisprobe.ReadHealth(ctx, c, cat, time.Now())
	switch {
	case err == nil:
		out.health = &h
	case !round:
		// Between rounds, the read-out is the liveness check. After a
		// passing round, a failed read-out is not a failure of Redis.
		out.failed = &redisprobe.Result{Name: "health-read-out", Reason: redisprobe.Classify(err), Message: err.Error()}
	}
	return out
}

// ownerTTL is how long a claim on a prefix lasts unrenewed: it is renewed
// every probe round (each health check interval).
func ownerTTL(interval time.Duration) time.Duration {
	return 2*interval + 30*time.Second
}

// claimPrefix claims or renews the Strategy's prefix after a passing
// round. A conflict goes in the outcome; a failed claim is the round's
// failure, as a probe of its own, before rollout; after it, the claim's
// failure shows in the probes only (a Strategy that ran before owners were
// claimed is not halted by an ACL without HGET or DEL).
func claimPrefix(ctx context.Context, c redis.UniversalClient, prefix string, me redisprobe.Owner, ttl time.Duration, rolledOut bool, out *checkOutcome) {
	start := time.Now()
	holder, ok, err := redisprobe.ClaimPrefix(ctx, c, prefix, me, ttl)
	res := redisprobe.Result{Name: redisprobe.ProbeOwner, OK: err == nil, Latency: time.Since(start),
		Message: "the prefix " + prefix + redisprobe.OwnerKey + " is this Strategy's"}
	switch {
	case err != nil:
		res.Reason = redisprobe.Classify(err)
		res.Message = err.Error()
		if !rolledOut {
			out.failed = &res
		}
	case !ok:
		res.Message = "held by Strategy " + holder.String()
		out.conflict = &holder
	}
	observeProbe(res)
	out.round.Probes = append(out.round.Probes, res)
}

func observeProbe(res redisprobe.Result) {
	probeLatency.WithLabelValues(res.Name).Observe(res.Latency.Seconds())
	if !res.OK {
		probeFailures.WithLabelValues(res.Name, res.Reason).Inc()
	}
}

// applyRedisVerdict puts the verdict in the scope, RedisReady and events.
func (r *StrategyReconciler) applyRedisVerdict(sc *scope, v lifecycle.RedisVerdict) ctrl.Result {
	sc.redisState = v.State
	if v.Unknown {
		lifecycle.SetConditionStatus(sc.strategy, stratv1.ConditionRedisReady, metav1.ConditionUnknown, v.Reason, v.Message)
	} else {
		lifecycle.SetCondition(sc.strategy, stratv1.ConditionRedisReady, v.Ready, v.Reason, v.Message)
	}
	sc.probeEvent = v.Event
	return ctrl.Result{RequeueAfter: v.RequeueAfter}
}

// recordProbeEvent records the Redis verdict's event, if any (see
// scope.probeEvent).
func (r *StrategyReconciler) recordProbeEvent(sc *scope) {
	if e := sc.probeEvent; e != nil {
		r.event(sc.strategy, e.Type, e.Reason, "Probe", "%s", e.Note)
		sc.probeEvent = nil
	}
}

// eventLoggerDeployment returns the Strategy's event logger Deployment,
// nil when it was not rolled out yet (the gate applies until it is). It is
// the cache's own object, not a copy (a Deployment's deep copy was the
// largest part of a healthy reconcile's allocations): read it, never
// change it.
func (r *StrategyReconciler) eventLoggerDeployment(ctx context.Context, s *stratv1.Strategy) (*appsv1.Deployment, error) {
	d := &appsv1.Deployment{}
	err := r.Get(ctx, client.ObjectKey{Namespace: s.Namespace, Name: children.EventLoggerName(s)}, d,
		&client.GetOptions{UnsafeDisableDeepCopy: ptr.To(true)})
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
