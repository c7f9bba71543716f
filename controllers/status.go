package controllers

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	stratv1 "github.com/stratops/stratops/api/v1"
)

// conditionCopy returns a copy of a condition (nil when absent): a pointer
// into the conditions would change under setCondition.
func conditionCopy(s *stratv1.Strategy, t string) *metav1.Condition {
	if c := meta.FindStatusCondition(s.Status.Conditions, t); c != nil {
		cp := *c
		return &cp
	}
	return nil
}

// setCondition sets one condition, stamped with the generation it describes.
func setCondition(s *stratv1.Strategy, t string, ok bool, reason, msg string) {
	status := metav1.ConditionFalse
	if ok {
		status = metav1.ConditionTrue
	}
	meta.SetStatusCondition(&s.Status.Conditions, metav1.Condition{
		Type: t, Status: status, Reason: reason, Message: msg, ObservedGeneration: s.Generation,
	})
}

// readinessConditions are the conditions Ready is derived from, in the
// order a user should fix them.
func readinessConditions(s *stratv1.Strategy) []string {
	var c []string
	if s.Spec.Mode == stratv1.ModeLive {
		c = append(c, stratv1.ConditionRedisReady)
	}
	c = append(c, stratv1.ConditionEventLoggerReady)
	if s.Spec.Engine != nil {
		c = append(c, stratv1.ConditionEngineReady)
	}
	return c
}

// summarize applies the kstatus rules in one place: Ready always present
// and derived from the other conditions, Reconciling present only while
// True, Stalled present only while True, observedGeneration on every patch.
// err is what the steps returned; st what they learned.
func (r *StrategyReconciler) summarize(s *stratv1.Strategy, st *reconcileState, err error) {
	wasReady := meta.IsStatusConditionTrue(s.Status.Conditions, stratv1.ConditionReady)
	prevStall := conditionCopy(s, stratv1.ConditionStalled)
	s.Status.ObservedGeneration = s.Generation

	if stl, ok := asStalled(err); ok {
		setCondition(s, stratv1.ConditionStalled, true, stl.reason, stl.message)
		setCondition(s, stratv1.ConditionReady, false, stl.reason, stl.message)
		meta.RemoveStatusCondition(&s.Status.Conditions, stratv1.ConditionReconciling)
		s.Status.Phase = stratv1.PhaseFailed
		if prevStall == nil || prevStall.Reason != stl.reason || prevStall.Message != stl.message {
			r.event(s, "Warning", stl.reason, "Reconcile", "%s", stl.message)
		}
		return
	}
	meta.RemoveStatusCondition(&s.Status.Conditions, stratv1.ConditionStalled)

	if err != nil {
		msg := fmt.Sprintf("Reconcile failed, retrying: %v", err)
		setCondition(s, stratv1.ConditionReconciling, true, stratv1.ReasonReconcileError, msg)
		if !meta.IsStatusConditionTrue(s.Status.Conditions, stratv1.ConditionReady) {
			setCondition(s, stratv1.ConditionReady, false, stratv1.ReasonReconcileError, msg)
		}
		if s.Status.Phase == "" || s.Status.Phase == stratv1.PhaseFailed || s.Status.Phase == stratv1.PhaseSuspended {
			s.Status.Phase = stratv1.PhasePending
		}
		r.event(s, "Warning", stratv1.ReasonReconcileError, "Reconcile", "%s", msg)
		return
	}

	// Waiting for Redis (gate closed, or lost after rollout) is progress
	// the operator is still working on: Reconciling, so kstatus says
	// InProgress and GitOps tools keep waiting instead of calling it done.
	if st.gated || st.redisLost {
		c := meta.FindStatusCondition(s.Status.Conditions, stratv1.ConditionRedisReady)
		reason := stratv1.ReasonRedisNotReady
		s.Status.Phase = stratv1.PhaseGated
		if st.redisLost {
			reason = stratv1.ReasonRedisLost
			s.Status.Phase = stratv1.PhaseHalted
			if s.Spec.RedisLossPolicy == stratv1.RedisLossAlert {
				s.Status.Phase = stratv1.PhaseDegraded
			}
		}
		setCondition(s, stratv1.ConditionReady, false, reason, c.Message)
		setCondition(s, stratv1.ConditionReconciling, true, reason, c.Message)
		return
	}

	for _, t := range readinessConditions(s) {
		c := meta.FindStatusCondition(s.Status.Conditions, t)
		if c == nil || c.Status != metav1.ConditionTrue {
			reason, msg := stratv1.ReasonReconciling, t+" is not known yet"
			if c != nil {
				reason, msg = c.Reason, c.Message
			}
			setCondition(s, stratv1.ConditionReady, false, reason, msg)
			setCondition(s, stratv1.ConditionReconciling, true, stratv1.ReasonProgressing, msg)
			s.Status.Phase = stratv1.PhasePending
			return
		}
	}
	setCondition(s, stratv1.ConditionReady, true, stratv1.ReasonSucceeded, "Strategy runs as declared")
	meta.RemoveStatusCondition(&s.Status.Conditions, stratv1.ConditionReconciling)
	s.Status.Phase = stratv1.PhaseRunning
	if st.backtestDone != "" {
		s.Status.Phase = st.backtestDone
	}
	if !wasReady {
		r.event(s, "Normal", "Ready", "Reconcile", "Strategy is ready")
	}
}

// suspend shows that reconciling stopped. Conditions stay as they were (a
// suspended Strategy keeps whatever runs), but Ready is never left absent.
func (r *StrategyReconciler) suspend(s *stratv1.Strategy) {
	s.Status.ObservedGeneration = s.Generation
	if s.Status.Phase != stratv1.PhaseSuspended {
		r.event(s, "Normal", stratv1.ReasonSuspended, "Suspend", "Reconciling is suspended (spec.suspend is true)")
	}
	s.Status.Phase = stratv1.PhaseSuspended
	meta.RemoveStatusCondition(&s.Status.Conditions, stratv1.ConditionReconciling)
	if meta.FindStatusCondition(s.Status.Conditions, stratv1.ConditionReady) == nil {
		setCondition(s, stratv1.ConditionReady, false, stratv1.ReasonSuspended, "Reconciling is suspended (spec.suspend is true)")
	}
}
