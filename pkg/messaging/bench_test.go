package messaging

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
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
			p.XAdd(ctx, &redis.XAddArgs{Stream: prefix + KeyEventsHistory, MinID: "0", Approx: true,
				Values: []any{"id", e.ID, "channel", e.Channel, "logged_at", e.LoggedAt.UnixMilli(),
					"timestamp", e.Event.Timestamp.Format(time.RFC3339Nano), "component", e.Event.Component,
					"event", e.Event.Event, "shape", string(e.Event.Shape), "message", msg}})
			note, _ := json.Marshal(map[string]any{
				"timestamp": e.LoggedAt.Format(time.RFC3339Nano), "component": ComponentEventLogger, "event": "logged",
				"metadata": map[string]any{"id": e.ID, "channel": e.Channel, "component": e.Event.Component,
					"event": e.Event.Event, "timestamp": e.Event.Timestamp.Format(time.RFC3339Nano)},
			})
			p.Publish(ctx, prefix+ChannelEventsLogged, note)
		}
		p.Expire(ctx, prefix+KeyEventsHistory, 24*time.Hour)
		return nil
	})
	return err
}

// BenchmarkRecord measures events logged per second through RedisBus and
// through raw go-redis doing the same work, one event per round trip and
// 256 per round trip. Compare events/s of bus-* with raw-*.
func BenchmarkRecord(b *testing.B) {
	ctx := context.Background()
	c := newClient(b, redisServer.Addr)
	for _, batch := range []int{1, 256} {
		entries := benchEntries(batch)
		prefix := prefixFor(b) + strconv.Itoa(batch) + ":"
		bus := NewRedisBus(c, RedisBusOptions{KeyPrefix: prefix})
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
		c.Del(ctx, prefix+KeyEventsHistory)
	}
}

func benchEvent(now time.Time) Event {
	payload, _ := Envelope(now, "position_monitor", "updated", map[string]any{"trigger": "GAS_FEE_PAID", "changes_count": 1})
	cat := Standard(ModeLive)
	e, _ := cat.DecodeEvent("position:updated", payload, DecodeOptions{})
	return e
}

// BenchmarkDecodeEvent measures decoding each shape of the standard, as
// the event logger does for every message it receives.
func BenchmarkDecodeEvent(b *testing.B) {
	cat := Standard(ModeLive)
	for _, tc := range []struct{ name, payload string }{
		{"envelope", `{"timestamp":"2024-05-12T14:00:00Z","component":"position_monitor","event":"updated","metadata":{"trigger":"GAS_FEE_PAID","changes_count":1}}`},
		{"flat", `{"timestamp": "2024-05-12T14:00:00.123456", "trigger": "GAS_FEE_PAID"}`},
		{"flat-large", `{"timestamp": "2024-05-12T14:00:00.123456+00:00", "overall_status": "WARNING", "alerts": ["BINANCE_MARGIN_WARNING", "AAVE_HEALTH_FACTOR"], "exposures": {"eth": -5.12, "btc": 0.25, "usdc": 120034.5}, "net_delta_eth": -5.12, "seq": 123456789012345678901234}`},
	} {
		payload := []byte(tc.payload)
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(payload)))
			for b.Loop() {
				if _, err := cat.DecodeEvent("position:updated", payload, DecodeOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
