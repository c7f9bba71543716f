package controllers

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	stratv1 "github.com/stratops/stratops/api/v1"
)

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
func readinessConditions(_ *stratv1.Strategy) []string {
	return []string{stratv1.ConditionEventLoggerReady}
}

// summarize applies the kstatus rules in one place: Ready always present
// and derived from the other conditions, Reconciling present only while
// True, Stalled present only while True, observedGeneration on every patch.
// err is what the steps returned.
func (r *StrategyReconciler) summarize(s *stratv1.Strategy, err error) {
	wasReady := meta.IsStatusConditionTrue(s.Status.Conditions, stratv1.ConditionReady)
	prevStall := meta.FindStatusCondition(s.Status.Conditions, stratv1.ConditionStalled)
	s.Status.ObservedGeneration = s.Generation

	if st, ok := asStalled(err); ok {
		setCondition(s, stratv1.ConditionStalled, true, st.reason, st.message)
		setCondition(s, stratv1.ConditionReady, false, st.reason, st.message)
		meta.RemoveStatusCondition(&s.Status.Conditions, stratv1.ConditionReconciling)
		s.Status.Phase = stratv1.PhaseFailed
		if prevStall == nil || prevStall.Reason != st.reason || prevStall.Message != st.message {
			r.event(s, "Warning", st.reason, "Reconcile", "%s", st.message)
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
