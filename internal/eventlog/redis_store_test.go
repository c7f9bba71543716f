package eventlog

import (
	"context"
	"fmt"
	"reflect"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stratops/stratops/pkg/messaging"
)

func TestRedisStore_RecordAppendsHistoryWithTTLAndNotifies(t *testing.T) {
	ctx := context.Background()
	c := newClient(t, redisServer.Addr)
	prefix := prefixFor(t)
	bus := NewRedisStore(c, RedisStoreOptions{KeyPrefix: prefix})
	sub, err := messaging.NewRedisBus(c, messaging.RedisBusOptions{KeyPrefix: prefix}).Subscribe(ctx, messaging.ChannelEventsLogged)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	now := time.Now().UTC()
	cat := messaging.Standard(messaging.ModeLive)
	envelope, _ := messaging.Envelope(now, "position_monitor", "updated", map[string]any{"n": 1})
	// A flat payload as Python writes it: a naive timestamp, an integer
	// too large for a float64, fields in an order of its own.
	flat := []byte(`{"timestamp": "2024-05-12T14:00:00.123456", "z": 123456789012345678901234, "a": [1, 2]}`)
	var entries []LogEntry
	for i, in := range []struct {
		channel string
		payload []byte
	}{{"position:updated", envelope}, {"risk:calculated", flat}} {
		e, err := cat.DecodeEvent(in.channel, in.payload, messaging.DecodeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, LogEntry{ID: fmt.Sprintf("x-%d", i+1), Channel: in.channel, LoggedAt: now, Event: e})
	}
	if err := bus.Record(ctx, entries); err != nil {
		t.Fatal(err)
	}
	h, _, err := bus.History(ctx, 10, "")
	if err != nil || len(h) != 2 || h[0].ID != "x-1" || h[1].ID != "x-2" {
		t.Fatalf("history %+v, %v", h, err)
	}
	if string(h[0].Event.Data()) != `{"n":1}` || h[0].Event.Shape != messaging.ShapeEnvelope {
		t.Fatalf("envelope entry %+v", h[0].Event)
	}
	if string(h[1].Event.Payload) != string(flat) || h[1].Event.Component != "risk_monitor" || h[1].Event.Event != "calculated" ||
		!h[1].Event.Timestamp.Equal(time.Date(2024, 5, 12, 14, 0, 0, 123456000, time.UTC)) {
		t.Fatalf("flat entry %+v: the payload must come back byte for byte", h[1].Event)
	}
	ttl := c.TTL(ctx, prefix+messaging.KeyEventsHistory).Val()
	if ttl <= 23*time.Hour || ttl > 24*time.Hour {
		t.Fatalf("events:history TTL %v, want 24h", ttl)
	}
	for i := range 2 {
		select {
		case d := <-sub.C():
			m, err := cat.DecodeEvent(d.Channel, d.Payload, messaging.DecodeOptions{})
			var md struct{ ID string }
			_ = m.Decode(&md)
			if err != nil || m.Component != messaging.ComponentEventLogger || m.Shape != messaging.ShapeEnvelope || md.ID != entries[i].ID {
				t.Fatalf("notification %d: %s (%v)", i, d.Payload, err)
			}
		case <-time.After(time.Second):
			t.Fatal("no notification on events:logged")
		}
	}
	ids, err := bus.RecentIDs(ctx, 10)
	if err != nil || !ids["x-1"] || !ids["x-2"] {
		t.Fatalf("RecentIDs %v, %v", ids, err)
	}
}

func TestMemoryStore_RecordNotifiesAndTheHistoryExpires(t *testing.T) {
	ctx := context.Background()
	clock := &simClock{now: time.Date(2024, 5, 12, 14, 0, 0, 0, time.UTC)}
	b := messaging.NewMemoryBus(clock)
	st := NewMemoryStore(b, clock)
	sub, err := b.Subscribe(ctx, messaging.ChannelEventsLogged)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := st.Record(ctx, []LogEntry{{ID: "a-1", Channel: "position:updated", LoggedAt: clock.Now()}}); err != nil {
		t.Fatal(err)
	}
	if d := <-sub.C(); d.Channel != messaging.ChannelEventsLogged {
		t.Fatalf("want a notification on events:logged, got %+v", d)
	}
	h, _, _ := st.History(ctx, 10, "")
	if len(h) != 1 || h[0].ID != "a-1" {
		t.Fatalf("history %+v", h)
	}
	clock.Advance(24 * time.Hour)
	if h, _, _ := st.History(ctx, 10, ""); len(h) != 0 {
		t.Fatal("events:history outlived its 24h TTL in simulated time")
	}
}

// simClock is a clock a test moves by hand.
type simClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *simClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *simClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestRecordFenced_ABatchCostsAFewAllocationsPerEvent: the fenced write
// builds a batch's arguments in a buffer it keeps (the fields, their
// timestamps, the notifications), neither per event nor copied again. A
// batch of 256 allocates, per event, about 9 objects of 160 bytes in all
// (go-redis reading the reply, Go boxing the fields); it was 13 objects
// of 1,790 bytes, and the garbage collector's work went with them. The
// entries it writes are Record's, field for field.
func TestRecordFenced_ABatchCostsAFewAllocationsPerEvent(t *testing.T) {
	ctx := context.Background()
	c := newClient(t, redisServer.Addr)
	prefix := prefixFor(t)
	bus := NewRedisStore(c, RedisStoreOptions{KeyPrefix: prefix})
	entries := benchEntries(256)
	entries[3].Event.Nonconforming = "missing_timestamp"
	if err := bus.RecordFenced(ctx, entries, ""); err != nil {
		t.Fatal(err)
	}
	got, err := c.XRange(ctx, prefix+messaging.KeyEventsHistory, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(entries) {
		t.Fatalf("%d entries in the history; want %d", len(got), len(entries))
	}
	for i, e := range entries {
		want := map[string]any{}
		v := streamValues(e)
		for j := 0; j < len(v); j += 2 {
			want[v[j].(string)] = fmt.Sprint(v[j+1])
			if b, ok := v[j+1].([]byte); ok {
				want[v[j].(string)] = string(b)
			}
		}
		if !reflect.DeepEqual(got[i].Values, want) {
			t.Fatalf("entry %d is %v; want %v", i, got[i].Values, want)
		}
	}
	const runs = 20
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		if err := bus.RecordFenced(ctx, entries, ""); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	n := float64(runs * len(entries))
	objects, bytes := float64(after.Mallocs-before.Mallocs)/n, float64(after.TotalAlloc-before.TotalAlloc)/n
	t.Logf("a batch of %d: per event, %.1f allocations, %.0f bytes", len(entries), objects, bytes)
	if objects > 10 || bytes > 400 {
		t.Errorf("per event, %.1f allocations of %.0f bytes; want at most 10 and 400", objects, bytes)
	}
}
