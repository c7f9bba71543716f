package eventlogger

import (
	"context"
	"encoding/json"
	"sort"
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
			Message: Message{Timestamp: now, Component: "position_monitor", Event: "updated",
				Metadata: map[string]any{"trigger": "GAS_FEE_PAID", "changes_count": 1}},
		}
	}
	return out
}

// rawRecord is Record's unit of work written with go-redis directly: the
// same encoding, the same commands in one MULTI/EXEC. It is the ceiling.
func rawRecord(ctx context.Context, c redis.UniversalClient, prefix string, entries []LogEntry) error {
	_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, e := range entries {
			msg, _ := json.Marshal(map[string]any{
				"timestamp": e.Message.Timestamp.Format(time.RFC3339Nano), "component": e.Message.Component,
				"event": e.Message.Event, "metadata": e.Message.Metadata,
			})
			p.XAdd(ctx, &redis.XAddArgs{Stream: prefix + KeyEventsHistory, MaxLen: DefaultHistoryMaxLen, Approx: true,
				Values: []any{"id", e.ID, "channel", e.Channel, "logged_at", e.LoggedAt.UnixMilli(), "message", msg}})
			note, _ := json.Marshal(map[string]any{
				"timestamp": e.LoggedAt.Format(time.RFC3339Nano), "component": ComponentEventLogger, "event": "logged",
				"metadata": map[string]any{"id": e.ID, "channel": e.Channel, "component": e.Message.Component,
					"event": e.Message.Event, "timestamp": e.Message.Timestamp.Format(time.RFC3339Nano)},
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

// BenchmarkPublishToLog measures the end-to-end latency from a component's
// PUBLISH to the logger's notification on events:logged (decode, log line,
// queue, MULTI/EXEC), and reports its p50 and p99.
func BenchmarkPublishToLog(b *testing.B) {
	ctx := context.Background()
	c := newClient(b, redisServer.Addr)
	cat := Standard(ModeLive)
	cat.KeyPrefix = prefixFor(b)
	bus := NewRedisBus(c, RedisBusOptions{KeyPrefix: cat.KeyPrefix})
	svc := NewService(ServiceConfig{Catalog: cat, Log: discardLog()}, bus)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- svc.Run(runCtx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("Run: %v", err)
		}
	}()
	for !svc.subscribed.Load() {
		time.Sleep(time.Millisecond)
	}
	watch, err := NewRedisBus(newClient(b, redisServer.Addr), RedisBusOptions{KeyPrefix: cat.KeyPrefix}).Subscribe(ctx, ChannelEventsLogged)
	if err != nil {
		b.Fatal(err)
	}
	defer watch.Close()
	payload := Message{Timestamp: time.Now(), Component: "position_monitor", Event: "updated", Metadata: map[string]any{"n": 1}}.Encode()
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		if err := c.Publish(ctx, cat.ChannelName("position:updated"), payload).Err(); err != nil {
			b.Fatal(err)
		}
		select {
		case <-watch.C():
		case <-time.After(5 * time.Second):
			b.Fatal("no events:logged notification within 5s")
		}
		lat = append(lat, time.Since(start))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	c.Del(ctx, cat.KeyName(KeyEventsHistory), cat.KeyName(KeyChannelStats))
}
