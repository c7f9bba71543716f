package messaging

import (
	"time"

	"github.com/cenkalti/backoff/v5"
)

// retryPolicy is how this package retries what failed (a subscription's
// reconnect, a forward to the event logger): exponential from initial to
// max, each delay drawn within ±50% of its nominal value, so that the
// many components that lost a shared Redis or logger together do not all
// retry at the same instants when it comes back.
func retryPolicy(initial, max time.Duration) *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval = initial, max
	b.Multiplier, b.RandomizationFactor = 2, 0.5
	b.Reset()
	return b
}
