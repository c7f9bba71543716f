package lifecycle

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	stratv1 "github.com/stratops/stratops/api/v1"
)

// RedisLossThreshold is how many probe rounds in a row must fail before a
// rolled-out Live strategy's Redis is declared lost: one passing error
// must not halt trading.
const RedisLossThreshold = 3

// RedisState is the Redis verdict on a Strategy: what its Redis means for
// it now. The names are the verdict's, not the phases' (a Strategy whose
// Redis is Lost is in phase Halted or Degraded, by its policy).
type RedisState string

const (
	// RedisInMemory: a backtest on the event logger's in-memory bus.
	RedisInMemory RedisState = "InMemory"
	// RedisOK: Redis passed its last check.
	RedisOK RedisState = "OK"
	// RedisFailing: the last check failed, but nothing is decided on it
	// yet: a Live strategy below the loss threshold, or a backtest on Redis
	// whose logger keeps its events until Redis returns.
	RedisFailing RedisState = "Failing"
	// RedisGated: Live, not rolled out, and Redis has not passed every
	// probe: nothing of the strategy rolls out.
	RedisGated RedisState = "Gated"
	// RedisLost: Live, rolled out, and RedisLossThreshold rounds in a row
	// failed: the loss policy applies.
	RedisLost RedisState = "Lost"
	// RedisUnseen: Live, rolled out, the operator's probes failed for as
	// long as a loss takes, but the event logger still reaches Redis (it
	// is ready, which in Live it is not without Redis): the operator's
	// own path to Redis is broken, not Redis. Nothing is halted.
	RedisUnseen RedisState = "Unseen"
)

// RedisFacts is what the verdict is decided from: the spec, what runs, and
// what the last check of Redis said.
type RedisFacts struct {
	Mode       stratv1.StrategyMode
	LossPolicy stratv1.RedisLossPolicy
	HasEngine  bool
	// Configured is false when the spec has no redis.
	Configured bool
	// LoggerRolledOut: the event logger Deployment exists; the gate
	// applies until it does.
	LoggerRolledOut bool
	// LoggerReady is how many of the event logger's replicas are ready:
	// the logger's own view of Redis, since in Live its readiness fails
	// while Redis is gone. It reaches the operator through the kubelet
	// and the API server, not over the operator's path to Redis.
	LoggerReady, LoggerReplicas int32
	// BacktestBus is the bus a backtest's logger rolled out with for the
	// current generation ("redis" or "memory"), "" when it has not yet: a
	// backtest keeps its bus, since switching would restart the logger and
	// lose what it holds.
	BacktestBus string
	// Failed is the check that failed this round; nil when Redis passed.
	Failed *Failure
	// ConsecutiveFailures counts failed rounds in a row, this one included.
	ConsecutiveFailures int32
	// LossThreshold, when set, is how long Redis must keep failing before
	// it is lost, instead of RedisLossThreshold rounds; FailingSince is
	// when it started failing, Now the time of the decision.
	LossThreshold     time.Duration
	FailingSince, Now time.Time
	// Interval is the health check interval, which bounds every requeue.
	Interval time.Duration
	// Prev is the RedisReady condition as it was, for the events that mark
	// a change.
	Prev *metav1.Condition
}

// Failure is a check of Redis that failed: the probe (or the health
// read-out), its failure class (Timeout, AuthFailed, ...) and what it said.
type Failure struct {
	Probe, Reason, Message string
}

// RetryGap is how long after a failed probe round the next one runs:
// doubling with the failures in a row (1s, 2s, 4s, ...), never longer than
// the health check interval, so that a Redis that fails slowly is not
// probed back to back.
func RetryGap(failures int32, interval time.Duration) time.Duration {
	if failures <= 0 {
		return 0
	}
	return min(time.Duration(1)<<min(failures-1, 6)*time.Second, interval)
}

// RedisVerdict is the decision: the state, the RedisReady condition, the
// event that marks a change (if any), and when to look again.
type RedisVerdict struct {
	State RedisState
	Ready bool
	// Unknown makes RedisReady Unknown rather than Ready says: the
	// operator cannot tell.
	Unknown bool
	Reason  string
	Message string
	Event   *Event
	// RequeueAfter is when Redis should be checked again.
	RequeueAfter time.Duration
}

// Event is an event a decision asks the reconciler to record about the
// Strategy.
type Event struct {
	Type, Reason, Note string
	// Once, when set, is said once per process for each value: an event
	// about a state that lasts (a held revision), not one per reconcile.
	Once string
}

// DecideRedis is the Redis policy of the README's behaviour sections, in
// one function of values: the Live gate, losing Redis after rollout under
// Halt or Alert, a backtest's in-memory fallback.
func DecideRedis(f RedisFacts) RedisVerdict {
	soon := min(2*time.Second, f.Interval)
	failure := ""
	if f.Failed != nil {
		failure = fmt.Sprintf("Redis probe %s failed (%s): %s", f.Failed.Probe, f.Failed.Reason, f.Failed.Message)
	}
	if !f.Configured {
		return RedisVerdict{State: RedisInMemory, Reason: stratv1.ReasonInMemoryFallback,
			Message: "No spec.redis: the backtest runs on the event logger's in-memory bus"}
	}
	if f.Mode == stratv1.ModeBacktest {
		onMemory := f.Failed != nil
		if f.BacktestBus != "" {
			onMemory = f.BacktestBus == BusMemory
		}
		switch {
		case onMemory && f.Failed != nil:
			return RedisVerdict{State: RedisInMemory, Reason: stratv1.ReasonInMemoryFallback, RequeueAfter: f.Interval,
				Message: failure + "; the backtest runs on the in-memory bus"}
		case onMemory:
			return RedisVerdict{State: RedisInMemory, Reason: stratv1.ReasonInMemoryFallback, RequeueAfter: f.Interval,
				Message: "the backtest runs on the in-memory bus, chosen at rollout because Redis failed its probes"}
		case f.Failed == nil:
			return RedisVerdict{State: RedisOK, Ready: true, Reason: stratv1.ReasonSucceeded, Message: "Redis passed every probe", RequeueAfter: f.Interval}
		default:
			return RedisVerdict{State: RedisFailing, Reason: stratv1.ReasonRedisNotReady, RequeueAfter: soon,
				Message: failure + "; the backtest's logger keeps its events until Redis returns"}
		}
	}

	// Live.
	switch {
	case f.Failed == nil:
		v := RedisVerdict{State: RedisOK, Ready: true, Reason: stratv1.ReasonSucceeded, Message: "Redis passed every probe", RequeueAfter: f.Interval}
		if !f.LoggerRolledOut && (f.Prev == nil || f.Prev.Status != metav1.ConditionTrue) {
			// Said when the gate opens: not again while the logger the
			// opened gate rolled out is not yet seen.
			v.Event = &Event{Type: corev1.EventTypeNormal, Reason: stratv1.EventGatePassed, Note: "Redis passed every probe: rolling out"}
		} else if f.Prev != nil && f.Prev.Reason == stratv1.ReasonRedisLost {
			v.Event = &Event{Type: corev1.EventTypeNormal, Reason: stratv1.EventRedisRecovered, Note: "Redis passed every probe again"}
		}
		return v
	case !f.LoggerRolledOut:
		// The gate, from the very first rollout; retried with backoff.
		v := RedisVerdict{State: RedisGated, Reason: stratv1.ReasonRedisNotReady, Message: "Live strategy gated: " + failure,
			RequeueAfter: min(time.Duration(1<<min(f.ConsecutiveFailures, 6))*time.Second, f.Interval)}
		if f.Prev == nil || f.Prev.Message != v.Message {
			v.Event = &Event{Type: corev1.EventTypeWarning, Reason: stratv1.EventGateFailed, Note: v.Message}
		}
		return v
	case f.LossThreshold == 0 && f.ConsecutiveFailures < RedisLossThreshold:
		// Not lost yet: one failure is not an outage. RedisReady stays
		// True (nothing is halted for it), with a reason that says so.
		var left time.Duration
		for n := f.ConsecutiveFailures; n < RedisLossThreshold; n++ {
			left += RetryGap(n, f.Interval)
		}
		return RedisVerdict{State: RedisFailing, Ready: true, Reason: stratv1.ReasonProbesFailing, RequeueAfter: soon,
			Message: fmt.Sprintf("%s: %d of %d failed rounds; Redis is declared lost after %d more, in about %s",
				failure, f.ConsecutiveFailures, RedisLossThreshold, RedisLossThreshold-f.ConsecutiveFailures, left)}
	case f.LossThreshold > 0 && f.Now.Sub(f.FailingSince) < f.LossThreshold:
		// Within the threshold (a Sentinel failover, say): not lost. The
		// message names when it would be, not the seconds left, so that it
		// (and the status) stays the same while the failure does.
		left := f.LossThreshold - f.Now.Sub(f.FailingSince)
		return RedisVerdict{State: RedisFailing, Ready: true, Reason: stratv1.ReasonProbesFailing, RequeueAfter: min(soon, left),
			Message: fmt.Sprintf("%s: failing since %s; Redis is declared lost at %s if it still fails (spec.redis.lossThreshold %s)",
				failure, f.FailingSince.UTC().Format(time.RFC3339), f.FailingSince.Add(f.LossThreshold).UTC().Format(time.RFC3339), f.LossThreshold)}
	case f.LoggerReady > 0 && (f.Prev == nil || f.Prev.Reason != stratv1.ReasonRedisLost):
		// Lost by the operator's view alone: a second opinion first. Once
		// lost, Redis stays lost until the operator's own probes pass: a
		// logger ready again first is Redis coming back, not the
		// operator's path failing.
		return unseen(f, failure, soon)
	default:
		// The message stays the same for the whole outage (the running
		// count is status.redis.consecutiveFailures), so alerts see one
		// change.
		lost := fmt.Sprintf("%d consecutive failed probe rounds", RedisLossThreshold)
		if f.LossThreshold > 0 {
			lost = "failing for spec.redis.lossThreshold " + f.LossThreshold.String()
		}
		v := RedisVerdict{State: RedisLost, Reason: stratv1.ReasonRedisLost, RequeueAfter: soon,
			Message: fmt.Sprintf("Redis lost after %s: probe %s failed (%s): %s",
				lost, f.Failed.Probe, f.Failed.Reason, f.Failed.Message)}
		if f.Prev == nil || f.Prev.Reason != stratv1.ReasonRedisLost {
			action := "policy Halt: the engine is scaled to zero"
			if f.LossPolicy == stratv1.RedisLossAlert {
				action = "policy Alert: the engine keeps running"
			}
			if !f.HasEngine {
				action = "policy " + string(f.LossPolicy) + " (no engine to act on)"
			}
			v.Event = &Event{Type: corev1.EventTypeWarning, Reason: stratv1.EventRedisLost, Note: v.Message + "; " + action}
		}
		return v
	}
}

// unseen is the verdict when the operator's probes say lost and the event
// logger, still ready, says Redis answers it: RedisReady Unknown, nothing
// halted, a Warning naming both views once.
func unseen(f RedisFacts, failure string, soon time.Duration) RedisVerdict {
	v := RedisVerdict{State: RedisUnseen, Unknown: true, Reason: stratv1.ReasonOperatorCannotReachRedis, RequeueAfter: soon,
		Message: fmt.Sprintf("the operator cannot reach Redis (%s) but the event logger can (%d/%d replicas ready, which in Live they are not without Redis): Redis is not declared lost and nothing is halted; check the operator's own path to Redis (its node's network, a NetworkPolicy, DNS)",
			failure, f.LoggerReady, f.LoggerReplicas)}
	if f.Prev == nil || f.Prev.Reason != stratv1.ReasonOperatorCannotReachRedis {
		v.Event = &Event{Type: corev1.EventTypeWarning, Reason: stratv1.EventOperatorCannotReachRedis, Note: v.Message}
	}
	return v
}

// Buses a backtest's logger can roll out with.
const (
	BusRedis  = "redis"
	BusMemory = "memory"
)

// Halted is whether the verdict stops a Live engine: Redis lost under
// policy Halt.
func Halted(state RedisState, policy stratv1.RedisLossPolicy) bool {
	return state == RedisLost && policy != stratv1.RedisLossAlert
}
