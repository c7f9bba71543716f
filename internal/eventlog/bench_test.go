package eventlog

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stratops/stratops/pkg/messaging"
)

func benchEntries(n int) []LogEntry {
	now := time.Now().UTC()
	out := make([]LogEntry, n)
	for i := range out {
		out[i] = LogEntry{
			ID: "bench-" + strconv.Itoa(i), Channel: "position:updated", LoggedAt: now,
			Event: benchEvent(now),
		}
	}
	return out
}

// rawRecord is Record's unit of work written with go-redis directly: the
// same encoding, the same commands in one MULTI/EXEC. It is the ceiling.
func rawRecord(ctx context.Context, c redis.UniversalClient, prefix string, entries []LogEntry) error {
	_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, e := range entries {
			msg := []byte(e.Event.Payload)
			p.XAdd(ctx, &redis.XAddArgs{Stream: prefix + messaging.KeyEventsHistory, MinID: "0", Approx: true,
				Values: []any{"id", e.ID, "channel", e.Channel, "logged_at", e.LoggedAt.UnixMilli(),
					"timestamp", e.Event.Timestamp.Format(time.RFC3339Nano), "component", e.Event.Component,
					"event", e.Event.Event, "shape", string(e.Event.Shape), "message", msg}})
			note, _ := json.Marshal(map[string]any{
				"timestamp": e.LoggedAt.Format(time.RFC3339Nano), "component": messaging.ComponentEventLogger, "event": "logged",
				"metadata": map[string]any{"id": e.ID, "channel": e.Channel, "component": e.Event.Component,
					"event": e.Event.Event, "timestamp": e.Event.Timestamp.Format(time.RFC3339Nano)},
			})
			p.Publish(ctx, prefix+messaging.ChannelEventsLogged, note)
		}
		p.Expire(ctx, prefix+messaging.KeyEventsHistory, 24*time.Hour)
		return nil
	})
	return err
}

// BenchmarkRecord measures events logged per second through RedisStore and
// through raw go-redis doing the same work, one event per round trip and
// 256 per round trip. Compare events/s of bus-* with raw-*.
func BenchmarkRecord(b *testing.B) {
	ctx := context.Background()
	c := newClient(b, redisServer.Addr)
	for _, batch := range []int{1, 256} {
		entries := benchEntries(batch)
		prefix := prefixFor(b) + strconv.Itoa(batch) + ":"
		bus := NewRedisStore(c, RedisStoreOptions{KeyPrefix: prefix})
		name := "per-event"
		if batch > 1 {
			name = "batch-" + strconv.Itoa(batch)
		}
		b.Run("bus-"+name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := bus.Record(ctx, entries); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
		})
		b.Run("raw-"+name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := rawRecord(ctx, c, prefix, entries); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
		})
		c.Del(ctx, prefix+messaging.KeyEventsHistory)
	}
}

func benchEvent(now time.Time) messaging.Event {
	payload, _ := messaging.Envelope(now, "position_monitor", "updated", map[string]any{"trigger": "GAS_FEE_PAID", "changes_count": 1})
	cat := messaging.Standard(messaging.ModeLive)
	e, _ := cat.DecodeEvent("position:updated", payload, messaging.DecodeOptions{})
	return e
}
