package messaging

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// simClock is a backtest's simulated clock.
type simClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *simClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *simClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestMemoryBus_KeysExpireBySimulatedTime(t *testing.T) {
	ctx := context.Background()
	clock := &simClock{now: time.Date(2024, 5, 12, 14, 0, 0, 0, time.UTC)}
	b := NewMemoryBus(clock)
	if err := b.Set(ctx, "position:snapshot", []byte(`{"timestamp":"2024-05-12T14:00:00Z"}`), time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := b.Set(ctx, "config:strategy", []byte(`{}`), 0); err != nil {
		t.Fatal(err)
	}
	clock.Advance(59 * time.Minute)
	if _, ttl, err := b.Get(ctx, "position:snapshot"); err != nil || ttl != time.Minute {
		t.Fatalf("after 59 simulated minutes: ttl %v, err %v; want 1m left", ttl, err)
	}
	clock.Advance(time.Minute)
	if _, _, err := b.Get(ctx, "position:snapshot"); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("after one simulated hour the key is still there (err %v)", err)
	}
	clock.Advance(1000 * time.Hour)
	if _, ttl, err := b.Get(ctx, "config:strategy"); err != nil || ttl >= 0 {
		t.Fatalf("a persistent key: ttl %v, err %v", ttl, err)
	}
}

func TestMemoryBus_PubSub(t *testing.T) {
	ctx := context.Background()
	clock := &simClock{now: time.Date(2024, 5, 12, 14, 0, 0, 0, time.UTC)}
	b := NewMemoryBus(clock)
	sub, err := b.Subscribe(ctx, "position:updated")
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := Envelope(clock.Now(), "position_monitor", "updated", nil)
	if err := b.PublishState(ctx, "position:updated", msg, "position:snapshot", []byte(`{"timestamp":"2024-05-12T14:00:00Z"}`), time.Hour); err != nil {
		t.Fatal(err)
	}
	d := <-sub.C()
	if d.Channel != "position:updated" || string(d.Payload) != string(msg) {
		t.Fatalf("got %+v", d)
	}
	_ = sub.Close()
	if _, ok := <-sub.C(); ok {
		t.Fatal("channel open after Close")
	}
}
