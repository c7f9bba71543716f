package eventlogger

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/stratops/stratops/pkg/messaging"
)

// BenchmarkPublishToLog measures the end-to-end latency from a component's
// PUBLISH to the logger's notification on events:logged (decode, log line,
// queue, MULTI/EXEC), and reports its p50 and p99.
func BenchmarkPublishToLog(b *testing.B) {
	ctx := context.Background()
	c := newClient(b, redisServer.Addr)
	cat := messaging.Standard(messaging.ModeLive)
	cat.KeyPrefix = prefixFor(b)
	bus := newRedisLog(c, cat.KeyPrefix)
	svc := NewService(ServiceConfig{Catalog: cat, Log: discardLog()}, bus, bus)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- svc.Run(runCtx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("Run: %v", err)
		}
	}()
	for !svc.ready.subscribed.Load() {
		time.Sleep(time.Millisecond)
	}
	watch, err := newRedisLog(newClient(b, redisServer.Addr), cat.KeyPrefix).Subscribe(ctx, messaging.ChannelEventsLogged)
	if err != nil {
		b.Fatal(err)
	}
	defer watch.Close()
	payload, _ := messaging.Envelope(time.Now(), "position_monitor", "updated", map[string]any{"n": 1})
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
	c.Del(ctx, cat.KeyName(messaging.KeyEventsHistory), cat.KeyName(messaging.KeyChannelStats))
}

// BenchmarkIngest measures the logger's throughput from a received message
// to its entry in events:history on a real redis-server: decode, log line,
// queue and batched MULTI/EXEC, for each shape of the standard. Compare
// its events/s with messaging's BenchmarkRecord (the write alone).
func BenchmarkIngest(b *testing.B) {
	for _, tc := range []struct{ name, payload string }{
		{"envelope", `{"timestamp":"2024-05-12T14:00:00Z","component":"position_monitor","event":"updated","metadata":{"trigger":"GAS_FEE_PAID","changes_count":1}}`},
		{"flat", `{"timestamp": "2024-05-12T14:00:00.123456", "trigger": "GAS_FEE_PAID", "changes_count": 1}`},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			c := newClient(b, redisServer.Addr)
			cat := messaging.Standard(messaging.ModeLive)
			cat.KeyPrefix = prefixFor(b)
			lb := newRedisLog(c, cat.KeyPrefix)
			svc := NewService(ServiceConfig{Catalog: cat, Log: discardLog(), PendingLimit: 1 << 30}, lb, lb)
			runCtx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- svc.Run(runCtx) }()
			for !svc.ready.subscribed.Load() {
				time.Sleep(time.Millisecond)
			}
			payload := []byte(tc.payload)
			b.ReportAllocs()
			start := time.Now()
			for b.Loop() {
				if err := svc.Ingest("position:updated", payload); err != nil {
					b.Fatal(err)
				}
			}
			for svc.Pending() > 0 {
				time.Sleep(time.Millisecond)
			}
			// Until the last one is in Redis, not only queued.
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
			cancel()
			if err := <-done; err != nil {
				b.Errorf("Run: %v", err)
			}
			c.Del(ctx, cat.KeyName(messaging.KeyEventsHistory), cat.KeyName(messaging.KeyChannelStats))
		})
	}
}
