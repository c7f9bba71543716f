package lifecycle

import (
	"errors"
	"fmt"
	"time"
)

// StalledError is a failure that no retry can fix until the user changes
// something (a missing Secret, a spec that cannot work). It sets
// Stalled=True with its reason, and the reconcile is not retried: a watch
// (on the Secret, on the Strategy) brings the next one.
type StalledError struct {
	Reason  string
	Message string
	// RetryAfter, when set, checks again after it: for a stall that can
	// end without a change anyone makes here (another Strategy's claim
	// lapsing).
	RetryAfter time.Duration
}

func (e *StalledError) Error() string { return e.Message }

// Stalled makes a StalledError with a condition reason and a message.
func Stalled(reason, format string, args ...any) error {
	return &StalledError{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// AsStalled reports whether err is, or wraps, a StalledError.
func AsStalled(err error) (*StalledError, bool) {
	var s *StalledError
	ok := errors.As(err, &s)
	return s, ok
}
