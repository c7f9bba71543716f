package eventlogger

import (
	"sync"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// nominal is the retry policy's delay before its jitter, for the n-th
// draw since a reset (0-based): 100 ms doubling, at most 3.2 s.
func nominal(n int) time.Duration {
	return min(100*time.Millisecond<<min(n, 10), 3200*time.Millisecond)
}

// TestRetry_FiftyRetriersDrawDistinctDelaysWithinTheJitterBand: loggers
// that failed together do not retry together: each draw is within ±50% of
// its nominal delay, and 50 retriers draw 50 different delays.
func TestRetry_FiftyRetriersDrawDistinctDelaysWithinTheJitterBand(t *testing.T) {
	for draw := range 7 {
		seen := map[time.Duration]bool{}
		for range 50 {
			b := Retry()
			var d time.Duration
			for range draw + 1 {
				d = b.NextBackOff()
			}
			if n := nominal(draw); d < n/2 || d > n*3/2 {
				t.Fatalf("draw %d: %s outside [%s, %s]", draw, d, n/2, n*3/2)
			}
			seen[d] = true
		}
		if len(seen) != 50 {
			t.Fatalf("draw %d: 50 retriers drew %d distinct delays", draw, len(seen))
		}
	}
}

// countingRetry records what the writer draws from the policy.
type countingRetry struct {
	inner backoff.BackOff

	mu     sync.Mutex
	draws  []time.Duration // each draw, with its place since the last reset
	places []int
	since  int
	resets int
}

func (c *countingRetry) NextBackOff() time.Duration {
	d := c.inner.NextBackOff()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.draws, c.places = append(c.draws, d), append(c.places, c.since)
	c.since++
	return d
}

func (c *countingRetry) Reset() {
	c.mu.Lock()
	c.resets, c.since = c.resets+1, 0
	c.mu.Unlock()
	c.inner.Reset()
}

func (c *countingRetry) counts() (draws, resets int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.draws), c.resets
}
