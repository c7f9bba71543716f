package eventlogger

import (
	"context"
	"testing"
	"time"

	"github.com/stratops/stratops/pkg/messaging"
)

// gapBus is a Redis bus and store whose subscription reports the gaps
// the test sends; the lease is the store's.
type gapBus struct {
	redisLog
	gaps chan messaging.Gap
}

func (b gapBus) Subscribe(ctx context.Context, channels ...string) (messaging.Subscription, error) {
	sub, err := b.redisLog.Subscribe(ctx, channels...)
	return gapSub{sub, b.gaps}, err
}

type gapSub struct {
	messaging.Subscription
	gaps chan messaging.Gap
}

func (s gapSub) Gaps() <-chan messaging.Gap { return s.gaps }

// Close closes the gaps too, as a subscription's Close does: the service
// waits for both to end.
func (s gapSub) Close() error {
	err := s.Subscription.Close()
	close(s.gaps)
	return err
}

// TestStandby_ItsOwnGapIsAGapWhenItTakesOver: a standby whose own
// subscription was down has a hole in its window; when it takes over, the
// hole is in the history as a gap event, so that "nothing lost outside a
// reported gap" holds whichever replica records.
func TestStandby_ItsOwnGapIsAGapWhenItTakesOver(t *testing.T) {
	ctx := context.Background()
	cat := liveCatalog(t)
	lb := newRedisLog(newClient(t, redisServer.Addr), cat.KeyPrefix)
	// Another replica holds the lease: this one stands by.
	other := newLeaseValue("other-replica")
	if held, _, err := lb.AcquireLease(ctx, other, 2*time.Second); err != nil || !held {
		t.Fatalf("the other replica's lease: %t, %v", held, err)
	}
	bus := gapBus{lb, make(chan messaging.Gap, 1)}
	r := startService(t, bus, ServiceConfig{Catalog: cat, LeaseTTL: 2 * time.Second})
	eventually(t, "this replica stands by", func() bool { lead, holder := r.svc.Leader(); return !lead && holder == "other-replica" })

	hole := messaging.Gap{Start: time.Now().Add(-3 * time.Second).UTC(), End: time.Now().Add(-time.Second).UTC(), Channels: []string{"position:updated"}}
	bus.gaps <- hole
	// The other replica stops renewing: its lease lapses, this one takes over.
	eventually(t, "this replica takes over", func() bool { lead, _ := r.svc.Leader(); return lead })
	eventually(t, "the standby's hole is a gap in the history", func() bool {
		h, _, err := lb.History(ctx, 100, "")
		if err != nil {
			return false
		}
		for _, e := range h {
			var md struct{ Start string }
			if e.Channel == ChannelGap && e.Event.Decode(&md) == nil && md.Start == messaging.FormatTimestamp(hole.Start) {
				return true
			}
		}
		return false
	})
}
