package controllers

import (
	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/lifecycle"
)

// summarize puts the outcome of the steps into the conditions and phase
// (lifecycle.Summarize) and returns the events that mark a change, which
// finish records once the status that holds the change is written.
func (r *StrategyReconciler) summarize(s *stratv1.Strategy, sc *scope, err error) []lifecycle.Event {
	return lifecycle.Summarize(s, lifecycle.Outcome{Redis: sc.redisState, BacktestDone: sc.backtestDone, Err: err, Stopped: sc.engineStopped})
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
