package controllers

import (
	"context"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/event"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/redisprobe"
)

// A Strategy's Redis is checked off the reconcile workers: a probe round
// or a health read-out runs in a goroutine of its own, under the
// Strategy's own deadline, at most one at a time per Strategy. The
// reconcile that starts a check waits for it a short while (checkWait),
// after doing, while Redis answers, what the check cannot change (see
// reconcileRedis); a Redis that answers in time is used at once, as if
// the check ran inline. One that does not (a listener that accepts and
// never answers) holds no worker: the reconcile carries on with what the
// last check found, and the check's end brings the next reconcile. So
// however many Strategies point at a slow Redis, the workers stay free
// for the others.

// checkWait is how long a reconcile waits for the check it started.
const checkWait = 500 * time.Millisecond

// checkOutcome is what one check found.
type checkOutcome struct {
	// round is the probe round, when the check ran one.
	round *redisprobe.Report
	// failed is the check's failure: the round's first failed probe, or
	// the read-out's error. nil when Redis answered.
	failed *redisprobe.Result
	// health is the read-out, when Redis answered it.
	health *redisprobe.Health
	// conflict is the Strategy that holds the prefix, when it is another.
	conflict *redisprobe.Owner
}

// checkState is one Strategy's checks: the one in flight, and what the
// ones that ended found.
type checkState struct {
	mu sync.Mutex
	// nn is the Strategy's name.
	nn types.NamespacedName
	// setting is the connection setting the state is about; a new one
	// starts afresh.
	setting string
	// running is closed when the check in flight ends; nil when none runs.
	running chan struct{}
	checkSnapshot
}

// checkSnapshot is what the checks that ended found, as one reconcile
// sees it.
type checkSnapshot struct {
	// checked: a check ended in this process.
	checked bool
	// running: a check is in flight.
	running bool
	// fresh: a check ended that no reconcile has used yet.
	fresh bool
	// failures counts the checks that failed in a row (seeded from status
	// when this process first checks the Strategy), since failingSince.
	failures     int32
	failingSince time.Time
	// failed is the last check's failure, nil when it passed.
	failed *redisprobe.Result
	// round is the last probe round, roundAt when it ended.
	round   *redisprobe.Report
	roundAt time.Time
	// health is the last check's read-out, nil when it made none;
	// lastHealth the last read-out any check made (the health series say
	// it, as status does, while Redis is lost).
	health, lastHealth *redisprobe.Health
	// conflict: the last round found the prefix held by another Strategy.
	conflict *redisprobe.Owner
}

// redisChecks holds every Strategy's check state.
type redisChecks struct {
	mu     sync.Mutex
	states map[string]*checkState
	// events receives a Strategy whose check ended after its reconcile
	// stopped waiting; the controller watches it.
	events chan event.GenericEvent
	// wait: see checkWait.
	wait time.Duration
}

func newRedisChecks() *redisChecks {
	return &redisChecks{states: map[string]*checkState{}, events: make(chan event.GenericEvent, 1024), wait: checkWait}
}

// state returns the Strategy's check state for a connection setting,
// starting afresh (with the failure count seeded from status) when there
// is none or it was about another setting.
func (rc *redisChecks) state(key types.NamespacedName, setting string, seedFailures int32, seedSince time.Time) *checkState {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	st, ok := rc.states[key.String()]
	if !ok || st.setting != setting {
		st = &checkState{nn: key, setting: setting, checkSnapshot: checkSnapshot{failures: seedFailures, failingSince: seedSince}}
		rc.states[key.String()] = st
	}
	return st
}

// peek is what the Strategy's checks found, whatever the setting; the
// zero snapshot when there are none.
func (rc *redisChecks) peek(key types.NamespacedName) checkSnapshot {
	rc.mu.Lock()
	st, ok := rc.states[key.String()]
	rc.mu.Unlock()
	if !ok {
		return checkSnapshot{}
	}
	return st.snapshot()
}

// forget drops a Strategy's state; a check in flight ends unseen.
func (rc *redisChecks) forget(key string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	delete(rc.states, key)
}

// lastHealth calls f with each Strategy's last read-out, for those with
// one. A read-out is never changed once made.
func (rc *redisChecks) lastHealth(f func(types.NamespacedName, *redisprobe.Health)) {
	rc.mu.Lock()
	states := make([]*checkState, 0, len(rc.states))
	for _, st := range rc.states {
		states = append(states, st)
	}
	rc.mu.Unlock()
	for _, st := range states {
		st.mu.Lock()
		nn, h := st.nn, st.lastHealth
		st.mu.Unlock()
		if h != nil {
			f(nn, h)
		}
	}
}

// current reports whether st is still the Strategy's state (it was not
// forgotten nor replaced by a new setting's).
func (rc *redisChecks) current(key types.NamespacedName, st *checkState) bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.states[key.String()] == st
}

// snapshot is what the ended checks found.
func (st *checkState) snapshot() checkSnapshot {
	st.mu.Lock()
	defer st.mu.Unlock()
	s := st.checkSnapshot
	s.running = st.running != nil
	return s
}

// use marks what the ended checks found as used by a reconcile.
func (st *checkState) use() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.fresh = false
}

// pendingCheck is a check a reconcile started and has not waited for yet.
type pendingCheck struct {
	st *checkState
	// round: the check runs a probe round; without one it is a read-out.
	round bool
	// done is closed when the check ends; waited when the reconcile
	// stopped waiting for it.
	done, waited chan struct{}
	// until is when the reconcile stops waiting: rc.wait after the start.
	until time.Time
}

// start runs a check in its own goroutine under timeout, unless one is in
// flight (then it returns nil). The reconcile waits for it (wait) up to
// rc.wait from now, and may do other work first.
func (rc *redisChecks) start(key types.NamespacedName, st *checkState, round bool, timeout time.Duration, run func(ctx context.Context) checkOutcome) *pendingCheck {
	st.mu.Lock()
	if st.running != nil {
		st.mu.Unlock()
		return nil
	}
	p := &pendingCheck{st: st, round: round, done: make(chan struct{}), waited: make(chan struct{}), until: time.Now().Add(rc.wait)}
	st.running = p.done
	st.mu.Unlock()
	checksInFlight.Inc()

	go func() {
		defer checksInFlight.Dec()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		out := run(ctx)
		cancel()
		st.mu.Lock()
		st.record(out, time.Now())
		st.running = nil
		close(p.done)
		st.mu.Unlock()
		select {
		case <-p.waited:
			// The reconcile stopped waiting: bring the next one.
			if rc.current(key, st) {
				rc.notify(key)
			}
		default:
		}
	}()
	return p
}

// wait waits for the check until its reconcile's time is up, marks what
// the checks found as used, and returns it. Call it once.
func (p *pendingCheck) wait() checkSnapshot {
	defer p.st.use()
	select {
	case <-p.done: // ended while the reconcile did other work
		return p.st.snapshot()
	default:
	}
	t := time.NewTimer(time.Until(p.until))
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		close(p.waited)
		// The check may have ended between the timer and the close.
		select {
		case <-p.done:
		default:
		}
	}
	return p.st.snapshot()
}

// record folds a check's outcome into the state; st.mu is held.
func (st *checkState) record(out checkOutcome, at time.Time) {
	st.checked, st.fresh = true, true
	st.failed, st.health = out.failed, out.health
	if out.health != nil {
		st.lastHealth = out.health
	}
	if out.round != nil {
		st.round, st.roundAt = out.round, at
		st.conflict = out.conflict
	}
	if out.failed == nil {
		st.failures, st.failingSince = 0, time.Time{}
	} else {
		if st.failures == 0 || st.failingSince.IsZero() {
			st.failingSince = at
		}
		st.failures++
	}
}

// notify enqueues the Strategy; it never blocks the check's goroutine for
// long: a full queue hands the event to a goroutine of its own.
func (rc *redisChecks) notify(key types.NamespacedName) {
	ev := event.GenericEvent{Object: &stratv1.Strategy{}}
	ev.Object.SetNamespace(key.Namespace)
	ev.Object.SetName(key.Name)
	select {
	case rc.events <- ev:
	default:
		go func() { rc.events <- ev }()
	}
}
