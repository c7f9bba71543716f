package lifecycle

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	stratv1 "github.com/stratops/stratops/api/v1"
)

// ConditionCopy returns a copy of a condition (nil when absent): a pointer
// into the conditions would change under setCondition.
func ConditionCopy(s *stratv1.Strategy, t string) *metav1.Condition {
	if c := meta.FindStatusCondition(s.Status.Conditions, t); c != nil {
		cp := *c
		return &cp
	}
	return nil
}

// SetCondition sets one condition, stamped with the generation it describes.
func SetCondition(s *stratv1.Strategy, t string, ok bool, reason, msg string) {
	status := metav1.ConditionFalse
	if ok {
		status = metav1.ConditionTrue
	}
	SetConditionStatus(s, t, status, reason, msg)
}

// RemoveCondition removes a condition, allocating nothing when there is
// none (meta.RemoveStatusCondition makes a new slice either way).
func RemoveCondition(s *stratv1.Strategy, t string) {
	if meta.FindStatusCondition(s.Status.Conditions, t) != nil {
		meta.RemoveStatusCondition(&s.Status.Conditions, t)
	}
}

// SetConditionStatus sets one condition to a status, Unknown included.
func SetConditionStatus(s *stratv1.Strategy, t string, status metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(&s.Status.Conditions, metav1.Condition{
		Type: t, Status: status, Reason: reason, Message: msg, ObservedGeneration: s.Generation,
	})
}

// readinessConditions are the conditions Ready is derived from, in the
// order a user should fix them. RedisReady counts in Live unless the
// operator alone cannot see Redis (RedisUnseen): its logger can, so the
// Strategy still runs as declared.
func readinessConditions(s *stratv1.Strategy, redis RedisState) []string {
	var c []string
	if s.Spec.Mode == stratv1.ModeLive && redis != RedisUnseen {
		c = append(c, stratv1.ConditionRedisReady)
	}
	c = append(c, stratv1.ConditionEventLoggerReady)
	if s.Spec.Engine != nil {
		c = append(c, stratv1.ConditionEngineReady)
	}
	return c
}

// Outcome is what the steps of one reconcile ended with.
type Outcome struct {
	// Redis is the Redis verdict.
	Redis RedisState
	// BacktestDone is Succeeded or Failed once the backtest Job finished.
	BacktestDone stratv1.StrategyPhase
	// Err is what the steps returned: nil, a Stalled, or an error
	// that is retried.
	Err error
	// Stopped: the Live engine is stopped on purpose (spec.engine.stopped).
	Stopped bool
}

// Summarize applies the kstatus rules in one place: Ready always present
// and derived from the other conditions, Reconciling present only while
// True, Stalled present only while True, observedGeneration set, and the
// phase. It returns the events that mark a change.
func Summarize(s *stratv1.Strategy, o Outcome) []Event {
	wasReady := meta.IsStatusConditionTrue(s.Status.Conditions, stratv1.ConditionReady)
	prevStall := ConditionCopy(s, stratv1.ConditionStalled)
	s.Status.ObservedGeneration = s.Generation

	if stl, ok := AsStalled(o.Err); ok {
		SetCondition(s, stratv1.ConditionStalled, true, stl.Reason, stl.Message)
		SetCondition(s, stratv1.ConditionReady, false, stl.Reason, stl.Message)
		RemoveCondition(s, stratv1.ConditionReconciling)
		s.Status.Phase = stratv1.PhaseFailed
		if prevStall == nil || prevStall.Reason != stl.Reason || prevStall.Message != stl.Message {
			return []Event{{Type: corev1.EventTypeWarning, Reason: stl.Reason, Note: stl.Message}}
		}
		return nil
	}
	RemoveCondition(s, stratv1.ConditionStalled)

	if o.Err != nil {
		msg := fmt.Sprintf("Reconcile failed, retrying: %v", o.Err)
		SetCondition(s, stratv1.ConditionReconciling, true, stratv1.ReasonReconcileError, msg)
		if !meta.IsStatusConditionTrue(s.Status.Conditions, stratv1.ConditionReady) {
			SetCondition(s, stratv1.ConditionReady, false, stratv1.ReasonReconcileError, msg)
		}
		if s.Status.Phase == "" || s.Status.Phase == stratv1.PhaseFailed || s.Status.Phase == stratv1.PhaseSuspended {
			s.Status.Phase = stratv1.PhasePending
		}
		return []Event{{Type: corev1.EventTypeWarning, Reason: stratv1.EventReconcileError, Note: msg}}
	}

	// Waiting for Redis (gate closed, or lost after rollout) is progress
	// the operator is still working on: Reconciling, so kstatus says
	// InProgress and GitOps tools keep waiting instead of calling it done.
	if o.Redis == RedisGated || o.Redis == RedisLost {
		msg := ""
		if c := meta.FindStatusCondition(s.Status.Conditions, stratv1.ConditionRedisReady); c != nil {
			msg = c.Message
		}
		reason := stratv1.ReasonRedisNotReady
		s.Status.Phase = stratv1.PhaseGated
		if o.Redis == RedisLost {
			reason = stratv1.ReasonRedisLost
			s.Status.Phase = stratv1.PhaseHalted
			if s.Spec.RedisLossPolicy == stratv1.RedisLossAlert {
				s.Status.Phase = stratv1.PhaseDegraded
			}
		}
		SetCondition(s, stratv1.ConditionReady, false, reason, msg)
		SetCondition(s, stratv1.ConditionReconciling, true, reason, msg)
		return nil
	}

	for _, t := range readinessConditions(s, o.Redis) {
		c := meta.FindStatusCondition(s.Status.Conditions, t)
		if c == nil || c.Status != metav1.ConditionTrue {
			reason, msg := stratv1.ReasonReconciling, t+" is not known yet"
			if c != nil {
				reason, msg = c.Reason, c.Message
			}
			SetCondition(s, stratv1.ConditionReady, false, reason, msg)
			SetCondition(s, stratv1.ConditionReconciling, true, stratv1.ReasonProgressing, msg)
			s.Status.Phase = stratv1.PhasePending
			return nil
		}
	}
	SetCondition(s, stratv1.ConditionReady, true, stratv1.ReasonSucceeded, "Strategy runs as declared")
	RemoveCondition(s, stratv1.ConditionReconciling)
	s.Status.Phase = stratv1.PhaseRunning
	if o.Stopped {
		// Stopped on purpose: as declared, so Ready, and nothing to wait
		// for, so Current; the phase says the engine does not trade.
		SetCondition(s, stratv1.ConditionReady, true, stratv1.ReasonStopped, "The engine is stopped on purpose (spec.engine.stopped)")
		s.Status.Phase = stratv1.PhaseHalted
	}
	if o.BacktestDone != "" {
		s.Status.Phase = o.BacktestDone
	}
	if !wasReady {
		return []Event{{Type: corev1.EventTypeNormal, Reason: stratv1.EventReady, Note: "Strategy is ready"}}
	}
	return nil
}

// Suspend shows that reconciling stopped. Conditions stay as they were (a
// suspended Strategy keeps whatever runs), but Ready is never left absent.
func Suspend(s *stratv1.Strategy) []Event {
	s.Status.ObservedGeneration = s.Generation
	var events []Event
	if s.Status.Phase != stratv1.PhaseSuspended {
		events = append(events, Event{Type: corev1.EventTypeNormal, Reason: stratv1.EventSuspended, Note: "Reconciling is suspended (spec.suspend is true)"})
	}
	s.Status.Phase = stratv1.PhaseSuspended
	RemoveCondition(s, stratv1.ConditionReconciling)
	if meta.FindStatusCondition(s.Status.Conditions, stratv1.ConditionReady) == nil {
		SetCondition(s, stratv1.ConditionReady, false, stratv1.ReasonSuspended, "Reconciling is suspended (spec.suspend is true)")
	}
	return events
}
