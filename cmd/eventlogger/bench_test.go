package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stratops/stratops/internal/redisserver"
	"github.com/stratops/stratops/pkg/messaging"
)

// The end-to-end ingest benchmarks run the logger binary as the operator
// provisions it (Live, a real redis-server, with and without its spool)
// and a publisher pipelining 500 PUBLISHes per round trip. Run them with
// -benchtime=1x: each is one fixed workload, reported with its figures.

func BenchmarkIngestBurst60k(b *testing.B) {
	for _, spool := range []bool{true, false} {
		b.Run(fmt.Sprintf("spool=%v", spool), func(b *testing.B) {
			for b.Loop() {
				benchBurst(b, spool, 60_000)
			}
		})
	}
}

func BenchmarkIngestSteady10kPerSecond(b *testing.B) {
	for _, spool := range []bool{true, false} {
		b.Run(fmt.Sprintf("spool=%v", spool), func(b *testing.B) {
			for b.Loop() {
				benchSteady(b, spool, 10_000, 3*time.Second)
			}
		})
	}
}

func benchLogger(b *testing.B, spool bool) (*redisserver.Server, *redis.Client, messaging.Catalog) {
	b.Helper()
	srv, err := redisserver.Start(redisserver.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Close)
	dir := ""
	if spool {
		dir = b.TempDir()
	}
	startLoggerEnv(b, srv.Addr, dir, "bench:", io.Discard, nil)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	b.Cleanup(func() { _ = c.Close() })
	cat := messaging.Standard(messaging.ModeLive)
	cat.KeyPrefix = "bench:"
	return srv, c, cat
}

func benchBurst(b *testing.B, spool bool, n int) {
	ctx := context.Background()
	_, c, cat := benchLogger(b, spool)
	ch := cat.ChannelName("position:updated")
	start := time.Now()
	for sent := 0; sent < n; {
		_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := 0; i < 500 && sent < n; i++ {
				payload, _ := messaging.Envelope(time.Now(), "position_monitor", "updated", map[string]any{"seq": sent})
				p.Publish(ctx, ch, payload)
				sent++
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	hist := cat.KeyName(messaging.KeyEventsHistory)
	deadline := time.Now().Add(60 * time.Second)
	var got int64
	for time.Now().Before(deadline) {
		if got = c.XLen(ctx, hist).Val(); got >= int64(n) {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.ReportMetric(float64(got)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(int64(n)-got), "lost")
}

func benchSteady(b *testing.B, spool bool, rate int, d time.Duration) {
	ctx := context.Background()
	srv, c, cat := benchLogger(b, spool)
	watch := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer watch.Close()
	ps := watch.Subscribe(ctx, cat.ChannelName(messaging.ChannelEventsLogged))
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil {
		b.Fatal(err)
	}
	n := int(float64(rate) * d.Seconds())
	lat := make([]time.Duration, 0, n)
	done := make(chan struct{})
	go func() {
		defer close(done)
		msgs := ps.Channel(redis.WithChannelSize(n))
		timeout := time.After(d + 30*time.Second)
		for len(lat) < n {
			select {
			case m := <-msgs:
				now := time.Now()
				e, err := cat.DecodeEvent(messaging.ChannelEventsLogged, []byte(m.Payload), messaging.DecodeOptions{})
				if err != nil {
					continue
				}
				var md struct{ Timestamp string }
				_ = e.Decode(&md)
				ts, err := messaging.ParseTimestamp(md.Timestamp)
				if err == nil {
					lat = append(lat, now.Sub(ts))
				}
			case <-timeout:
				return
			}
		}
	}()
	ch := cat.ChannelName("position:updated")
	// Batches of 10 every millisecond: the rate, evenly.
	tick := time.NewTicker(time.Millisecond)
	per := rate / 1000
	for sent := 0; sent < n; {
		<-tick.C
		_, _ = c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := 0; i < per && sent < n; i++ {
				payload, _ := messaging.Envelope(time.Now(), "position_monitor", "updated", map[string]any{"seq": sent})
				p.Publish(ctx, ch, payload)
				sent++
			}
			return nil
		})
	}
	tick.Stop()
	<-done
	if len(lat) == 0 {
		b.Fatal("no notification")
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(n-len(lat)), "lost")
}
