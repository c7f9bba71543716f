package messaging

import (
	"testing"
	"time"
)

// TestRetryPolicy_FiftyRetriersDrawDistinctDelaysWithinTheJitterBand:
// components that failed together do not retry together.
func TestRetryPolicy_FiftyRetriersDrawDistinctDelaysWithinTheJitterBand(t *testing.T) {
	for draw := range 4 {
		nominal := min(50*time.Millisecond<<draw, time.Second)
		seen := map[time.Duration]bool{}
		for range 50 {
			b := retryPolicy(50*time.Millisecond, time.Second)
			var d time.Duration
			for range draw + 1 {
				d = b.NextBackOff()
			}
			if d < nominal/2 || d > nominal*3/2 {
				t.Fatalf("draw %d: %s outside [%s, %s]", draw, d, nominal/2, nominal*3/2)
			}
			seen[d] = true
		}
		if len(seen) != 50 {
			t.Fatalf("draw %d: 50 retriers drew %d distinct delays", draw, len(seen))
		}
	}
}
