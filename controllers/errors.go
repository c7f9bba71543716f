package controllers

import (
	"errors"
	"fmt"
)

// stalledError is a failure that no retry can fix until the user changes
// something (a missing Secret, a spec that cannot work). It sets
// Stalled=True with its reason, and the reconcile is not retried: a watch
// (on the Secret, on the Strategy) brings the next one.
type stalledError struct {
	reason  string
	message string
}

func (e *stalledError) Error() string { return e.message }

func stalled(reason, format string, args ...any) error {
	return &stalledError{reason: reason, message: fmt.Sprintf(format, args...)}
}

// asStalled reports whether err is, or wraps, a stalledError.
func asStalled(err error) (*stalledError, bool) {
	var s *stalledError
	ok := errors.As(err, &s)
	return s, ok
}
