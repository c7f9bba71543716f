package lifecycle

import (
	"errors"
	"fmt"
	"time"
)

// A step of the reconcile ends in one of three ways besides success, each
// a type that says what happens next (as Flux's internal/error does):
// Stalled (no retry helps until someone changes something), Waiting (the
// reconcile has nothing to decide on yet and comes back), or any other
// error (retried with backoff).

// Stalled is a failure that no retry can fix until the user changes
// something (a missing Secret, a spec that cannot work). It sets
// Stalled=True with its reason, and the reconcile is not retried: a watch
// (on the Strategy, on a Secret) brings the next one, or RetryAfter.
type Stalled struct {
	Reason  string
	Message string
	// RetryAfter, when set, checks again after it: for a stall that can
	// end without a change anyone makes here (another Strategy's claim on
	// a prefix lapsing). Zero: only a watch brings the next reconcile.
	RetryAfter time.Duration
}

func (e *Stalled) Error() string { return e.Message }

// Stall makes a Stalled with a condition reason and a message.
func Stall(reason, format string, args ...any) *Stalled {
	return &Stalled{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// AsStalled reports whether err is, or wraps, a Stalled.
func AsStalled(err error) (*Stalled, bool) {
	var s *Stalled
	ok := errors.As(err, &s)
	return s, ok
}

// Waiting stops a reconcile that has nothing to decide on yet (the first
// check of a Strategy's Redis in this process has not ended). The steps
// after it do not run and nothing is written, since nothing new is known;
// the reconcile runs again after RequeueAfter, or sooner when what it
// waits for ends.
type Waiting struct {
	Reason       string
	RequeueAfter time.Duration
}

func (w *Waiting) Error() string {
	return fmt.Sprintf("waiting (%s), again in %s", w.Reason, w.RequeueAfter)
}

// AsWaiting reports whether err is, or wraps, a Waiting.
func AsWaiting(err error) (*Waiting, bool) {
	var w *Waiting
	ok := errors.As(err, &w)
	return w, ok
}
