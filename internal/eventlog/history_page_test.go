package eventlog

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stratops/stratops/pkg/messaging"
)

// Both stores page events:history the same way: newest page first, each
// page oldest first, a cursor to the older page, none after the oldest.
func TestHistory_PagesBackwardsOnBothStores(t *testing.T) {
	for name, bus := range map[string]Store{
		"redis":  NewRedisStore(newClient(t, redisServer.Addr), RedisStoreOptions{KeyPrefix: prefixFor(t)}),
		"memory": NewMemoryStore(messaging.NewMemoryBus(nil), nil),
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			var entries []LogEntry
			for i := range 25 {
				entries = append(entries, LogEntry{ID: fmt.Sprintf("e-%02d", i), Channel: "http", LoggedAt: time.Now(),
					Event: messaging.Event{Channel: "http", Component: "c", Event: "e", Timestamp: time.Now(), Payload: []byte(`{}`)}})
			}
			if err := bus.Record(ctx, entries); err != nil {
				t.Fatal(err)
			}
			var seen []string
			before, pages := "", 0
			for {
				page, next, err := bus.History(ctx, 10, before)
				if err != nil {
					t.Fatal(err)
				}
				pages++
				var ids []string
				for _, e := range page {
					ids = append(ids, e.ID)
				}
				seen = append(ids, seen...)
				if next == "" {
					break
				}
				before = next
			}
			if pages != 3 || len(seen) != 25 {
				t.Fatalf("%d pages, %d entries: %v", pages, len(seen), seen)
			}
			for i, id := range seen {
				if id != fmt.Sprintf("e-%02d", i) {
					t.Fatalf("entry %d is %s: pages overlap or skip: %v", i, id, seen)
				}
			}
			if _, _, err := bus.History(ctx, 10, "not-a-cursor"); !errors.Is(err, ErrBadCursor) {
				t.Fatalf("a made-up cursor: %v", err)
			}
		})
	}
}
