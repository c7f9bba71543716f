package controllers

import (
	"strings"
	"sync"

	"sigs.k8s.io/controller-runtime/pkg/client"

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
	r.recordEvents(s, lifecycle.Suspend(s), "Suspend")
}

// recordEvents records the events a decision asked for: each one with a
// Once key only the first time this process sees that key.
func (r *StrategyReconciler) recordEvents(s *stratv1.Strategy, events []lifecycle.Event, action string) {
	for _, e := range events {
		if e.Once != "" && !r.said.first(client.ObjectKeyFromObject(s).String()+"|"+e.Once) {
			continue
		}
		r.event(s, e.Type, e.Reason, action, "%s", e.Note)
	}
}

// onceMemo remembers what was said once per process, by Strategy: an
// event about a state that lasts is said when it starts, not on every
// reconcile while it lasts. Keys start with the Strategy's key and "|".
type onceMemo struct{ m sync.Map }

// first reports whether key is new, and remembers it.
func (o *onceMemo) first(key string) bool {
	_, seen := o.m.LoadOrStore(key, struct{}{})
	return !seen
}

// forget drops what was said about one Strategy.
func (o *onceMemo) forget(strategy string) {
	o.m.Range(func(k, _ any) bool {
		if strings.HasPrefix(k.(string), strategy+"|") {
			o.m.Delete(k)
		}
		return true
	})
}
