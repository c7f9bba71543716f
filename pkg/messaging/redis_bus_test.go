package messaging

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestStandard_PubSubRoundTrip is the standard's own pub/sub test, on a
// real redis-server: subscribe (and wait for the confirmation), publish,
// receive the JSON back.
func TestStandard_PubSubRoundTrip(t *testing.T) {
	ctx := context.Background()
	bus := NewRedisBus(newClient(t, redisServer.Addr), RedisBusOptions{KeyPrefix: prefixFor(t)})
	sub, err := bus.Subscribe(ctx, "position:updated")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := bus.Publish(ctx, "position:updated", []byte(`{"test": true}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-sub.C():
		var v map[string]bool
		if err := json.Unmarshal(d.Payload, &v); err != nil || !v["test"] || d.Channel != "position:updated" {
			t.Fatalf("received %+v (%v)", d, err)
		}
	case <-time.After(time.Second):
		t.Fatal("no message within 1s")
	}
}

// TestStandard_KeyWithOneSecondTTLIsGoneAfterTwo is the standard's own TTL
// test.
func TestStandard_KeyWithOneSecondTTLIsGoneAfterTwo(t *testing.T) {
	ctx := context.Background()
	bus := NewRedisBus(newClient(t, redisServer.Addr), RedisBusOptions{KeyPrefix: prefixFor(t)})
	if err := bus.Set(ctx, "test:data", []byte("value"), time.Second); err != nil {
		t.Fatal(err)
	}
	if v, _, err := bus.Get(ctx, "test:data"); err != nil || string(v) != "value" {
		t.Fatalf("immediately: %q, %v", v, err)
	}
	time.Sleep(2 * time.Second)
	if _, _, err := bus.Get(ctx, "test:data"); err != ErrKeyNotFound {
		t.Fatalf("after 2s: %v, want ErrKeyNotFound", err)
	}
}

func TestRedisBus_PublishStateSetsTheKeyWithItsTTLInOneRoundTrip(t *testing.T) {
	ctx := context.Background()
	c := newClient(t, redisServer.Addr)
	prefix := prefixFor(t)
	bus := NewRedisBus(c, RedisBusOptions{KeyPrefix: prefix})
	var calls int
	c.AddHook(countHook{&calls})
	msg, _ := Envelope(time.Now(), "position_monitor", "updated", nil)
	if err := bus.PublishState(ctx, "position:updated", msg, "position:snapshot", []byte(`{"timestamp":"2024-05-12T14:00:00Z"}`), time.Hour); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Fatalf("%d round trips, want 1", calls)
	}
	ttl := c.TTL(ctx, prefix+"position:snapshot").Val()
	if ttl <= 59*time.Minute || ttl > time.Hour {
		t.Fatalf("TTL %v, want about 1h", ttl)
	}
}

func TestRedisBus_RecordAppendsHistoryWithTTLAndNotifies(t *testing.T) {
	ctx := context.Background()
	c := newClient(t, redisServer.Addr)
	prefix := prefixFor(t)
	bus := NewRedisBus(c, RedisBusOptions{KeyPrefix: prefix})
	sub, err := bus.Subscribe(ctx, ChannelEventsLogged)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	now := time.Now().UTC()
	cat := Standard(ModeLive)
	envelope, _ := Envelope(now, "position_monitor", "updated", map[string]any{"n": 1})
	// A flat payload as Python writes it: a naive timestamp, an integer
	// too large for a float64, fields in an order of its own.
	flat := []byte(`{"timestamp": "2024-05-12T14:00:00.123456", "z": 123456789012345678901234, "a": [1, 2]}`)
	var entries []LogEntry
	for i, in := range []struct {
		channel string
		payload []byte
	}{{"position:updated", envelope}, {"risk:calculated", flat}} {
		e, err := cat.DecodeEvent(in.channel, in.payload, DecodeOptions{})
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
	if string(h[0].Event.Metadata) != `{"n":1}` || h[0].Event.Shape != ShapeEnvelope {
		t.Fatalf("envelope entry %+v", h[0].Event)
	}
	if string(h[1].Event.Payload) != string(flat) || h[1].Event.Component != "risk_monitor" || h[1].Event.Event != "calculated" ||
		!h[1].Event.Timestamp.Equal(time.Date(2024, 5, 12, 14, 0, 0, 123456000, time.UTC)) {
		t.Fatalf("flat entry %+v: the payload must come back byte for byte", h[1].Event)
	}
	ttl := c.TTL(ctx, prefix+KeyEventsHistory).Val()
	if ttl <= 23*time.Hour || ttl > 24*time.Hour {
		t.Fatalf("events:history TTL %v, want 24h", ttl)
	}
	for i := range 2 {
		select {
		case d := <-sub.C():
			m, err := cat.DecodeEvent(d.Channel, d.Payload, DecodeOptions{})
			var md struct{ ID string }
			_ = m.Decode(&md)
			if err != nil || m.Component != ComponentEventLogger || m.Shape != ShapeEnvelope || md.ID != entries[i].ID {
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

// countHook counts round trips of work: a command or a pipeline each. The
// handshake of a new connection (HELLO, CLIENT SETINFO) is not work and is
// not counted.
type countHook struct{ n *int }

func (h countHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() != "hello" {
			*h.n++
		}
		return next(ctx, cmd)
	}
}
func (h countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && cmds[0].Name() != "client" {
			*h.n++
		}
		return next(ctx, cmds)
	}
}
