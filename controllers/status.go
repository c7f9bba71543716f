package controllers

import (
	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/lifecycle"
)

// summarize puts the outcome of the steps into the conditions and phase
// (lifecycle.Summarize) and records the events that mark a change.
func (r *StrategyReconciler) summarize(s *stratv1.Strategy, sc *scope, err error) {
	r.record(s, lifecycle.Summarize(s, lifecycle.Outcome{Redis: sc.redisState, BacktestDone: sc.backtestDone, Err: err}), "Reconcile")
}

// suspend shows that reconciling stopped.
func (r *StrategyReconciler) suspend(s *stratv1.Strategy) {
	r.record(s, lifecycle.Suspend(s), "Suspend")
}

func (r *StrategyReconciler) record(s *stratv1.Strategy, events []lifecycle.Event, action string) {
	for _, e := range events {
		r.event(s, e.Type, e.Reason, action, "%s", e.Note)
	}
}
