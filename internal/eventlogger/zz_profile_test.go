package eventlogger

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stratops/stratops/pkg/messaging"
)

func BenchmarkZZBurst(b *testing.B) {
	ctx := context.Background()
	c := newClient(b, redisServer.Addr)
	cat := messaging.Standard(messaging.ModeLive)
	cat.KeyPrefix = prefixFor(b)
	lb := newRedisLog(c, cat.KeyPrefix)
	svc := NewService(ServiceConfig{Catalog: cat, Log: discardLog(), Out: io.Discard}, lb, lb)
	if err := svc.UseSpool(b.TempDir(), 256<<20); err != nil {
		b.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- svc.Run(runCtx) }()
	for !svc.ready.subscribed.Load() {
		time.Sleep(time.Millisecond)
	}
	pub := newClient(b, redisServer.Addr)
	ch := cat.ChannelName("position:updated")
	const n = 60000
	start := time.Now()
	for sent := 0; sent < n; {
		_, _ = pub.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := 0; i < 500 && sent < n; i++ {
				payload, _ := messaging.Envelope(time.Now(), "position_monitor", "updated", map[string]any{"seq": sent})
				p.Publish(ctx, ch, payload)
				sent++
			}
			return nil
		})
	}
	hist := cat.KeyName(messaging.KeyEventsHistory)
	for c.XLen(ctx, hist).Val() < n {
		time.Sleep(2 * time.Millisecond)
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "events/s")
	cancel()
	<-done
}
