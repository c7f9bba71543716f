package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stratops/stratops/internal/redisserver"
	"github.com/stratops/stratops/pkg/messaging"
)

// The end-to-end ingest benchmarks run the logger binary as the operator
// provisions it (Live, a real redis-server, with and without its spool)
// and a publisher pipelining 500 PUBLISHes per round trip. Each runs,
// first, the same workload against minimalLogger on a Redis of its own,
// in the same run: the logger's figures are reported beside the least a
// logger can do, and as ratios to it, over benchPairs pairs. Run them
// with -benchtime=1x: each is one fixed workload, reported with its
// figures. Figures of different runs are not compared.

func BenchmarkIngestBurst60k(b *testing.B) {
	for _, spool := range []bool{true, false} {
		b.Run(fmt.Sprintf("spool=%v", spool), func(b *testing.B) {
			for b.Loop() {
				var least, ours, ratio []float64
				for range benchPairs {
					l := benchBurst(b, benchMinimal(b), 60_000)
					o := benchBurst(b, benchLogger(b, spool), 60_000)
					least, ours, ratio = append(least, l), append(ours, o), append(ratio, o/l)
				}
				b.ReportMetric(median(least), "minimal-events/s")
				b.ReportMetric(median(ours), "events/s")
				b.ReportMetric(median(ratio), "ratio")
				b.Logf("spool=%v: ratios %s", spool, fmtRatios(ratio))
			}
		})
	}
}

func BenchmarkIngestSteady10kPerSecond(b *testing.B) {
	for _, spool := range []bool{true, false} {
		b.Run(fmt.Sprintf("spool=%v", spool), func(b *testing.B) {
			for b.Loop() {
				var l50s, l99s, o50s, o99s, r50, r99 []float64
				for range benchPairs {
					l50, l99 := benchSteady(b, benchMinimal(b), 10_000, 3*time.Second)
					o50, o99 := benchSteady(b, benchLogger(b, spool), 10_000, 3*time.Second)
					l50s, l99s, o50s, o99s = append(l50s, ms(l50)), append(l99s, ms(l99)), append(o50s, ms(o50)), append(o99s, ms(o99))
					r50, r99 = append(r50, float64(o50)/float64(l50)), append(r99, float64(o99)/float64(l99))
				}
				b.ReportMetric(median(l50s), "minimal-p50-ms")
				b.ReportMetric(median(l99s), "minimal-p99-ms")
				b.ReportMetric(median(o50s), "p50-ms")
				b.ReportMetric(median(o99s), "p99-ms")
				b.ReportMetric(median(r50), "p50-ratio")
				b.ReportMetric(median(r99), "p99-ratio")
				b.Logf("spool=%v: p50 ratios %s, p99 ratios %s", spool, fmtRatios(r50), fmtRatios(r99))
			}
		})
	}
}

// benchPairs is how many times each benchmark runs the minimal logger and
// then ours, each pair on fresh Redis servers: the figures reported are
// the medians, a ratio the median of the pairs' ratios. One pair alone
// moved by a fifth from run to run with the machine.
const benchPairs = 3

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func fmtRatios(v []float64) string {
	out := make([]string, len(v))
	for i, r := range v {
		out[i] = strconv.FormatFloat(r, 'f', 2, 64)
	}
	return strings.Join(out, " ")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// benchTarget is a logger under a workload: its Redis, a client, and the
// catalog.
type benchTarget struct {
	srv *redisserver.Server
	c   *redis.Client
	cat messaging.Catalog
}

func benchRedis(b *testing.B) benchTarget {
	b.Helper()
	srv, err := redisserver.Start(redisserver.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Close)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	b.Cleanup(func() { _ = c.Close() })
	cat := messaging.Standard(messaging.ModeLive)
	cat.KeyPrefix = "bench:"
	return benchTarget{srv, c, cat}
}

func benchLogger(b *testing.B, spool bool) benchTarget {
	b.Helper()
	t := benchRedis(b)
	dir := ""
	if spool {
		dir = b.TempDir()
	}
	startLoggerEnv(b, t.srv.Addr, dir, t.cat.KeyPrefix, io.Discard, nil)
	return t
}

// benchMinimal runs minimalLogger on a Redis of its own.
func benchMinimal(b *testing.B) benchTarget {
	b.Helper()
	t := benchRedis(b)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); minimalLogger(ctx, t.srv.Addr, t.cat, ready) }()
	b.Cleanup(func() { cancel(); <-done })
	<-ready
	return t
}

// minimalLogger is the least a logger can do per event of what the
// standard asks: it subscribes to the catalog's channels and, per message,
// adds it to events:history with its 24 h retention and publishes its
// events:logged notification (which carries the event's timestamp, read
// from the message), pipelined by up to 256 messages a round trip. It
// validates nothing, keeps no counters, no spool, no lease.
func minimalLogger(ctx context.Context, addr string, cat messaging.Catalog, ready chan<- struct{}) {
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	var chans []string
	for _, ch := range cat.Channels {
		if ch.Name != messaging.ChannelEventsLogged {
			chans = append(chans, cat.ChannelName(ch.Name))
		}
	}
	ps := c.Subscribe(ctx, chans...)
	defer ps.Close()
	for range chans {
		if _, err := ps.Receive(ctx); err != nil {
			close(ready)
			return
		}
	}
	close(ready)
	msgs := ps.Channel(redis.WithChannelSize(100_000))
	hist := cat.KeyName(messaging.KeyEventsHistory)
	logged := cat.ChannelName(messaging.ChannelEventsLogged)
	batch := make([]*redis.Message, 0, 256)
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-msgs:
			batch = append(batch[:0], m)
		}
	more:
		for len(batch) < 256 {
			select {
			case m := <-msgs:
				batch = append(batch, m)
			default:
				break more
			}
		}
		minID := strconv.FormatInt(time.Now().Add(-24*time.Hour).UnixMilli(), 10)
		_, _ = c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, m := range batch {
				var md struct{ Timestamp string }
				_ = json.Unmarshal([]byte(m.Payload), &md)
				p.XAdd(ctx, &redis.XAddArgs{Stream: hist, MinID: minID, Approx: true,
					Values: []any{"channel", m.Channel, "message", m.Payload}})
				note, _ := messaging.Envelope(time.Now(), messaging.ComponentEventLogger, messaging.EventType(messaging.ChannelEventsLogged),
					map[string]any{"channel": m.Channel, "timestamp": md.Timestamp})
				p.Publish(ctx, logged, note)
			}
			return nil
		})
	}
}

// benchBurst publishes n messages as fast as it can and returns the rate
// at which they reached the history.
func benchBurst(b *testing.B, t benchTarget, n int) float64 {
	ctx := context.Background()
	c, cat := t.c, t.cat
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
	if got < int64(n) {
		b.Fatalf("%d of %d messages reached the history", got, n)
	}
	return float64(got) / elapsed.Seconds()
}

// benchSteady publishes at rate for d and returns the p50 and p99 of the
// time from a message's timestamp to its events:logged notification.
func benchSteady(b *testing.B, t benchTarget, rate int, d time.Duration) (p50, p99 time.Duration) {
	ctx := context.Background()
	srv, c, cat := t.srv, t.c, t.cat
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
	if len(lat) < n {
		b.Fatalf("%d of %d messages were notified", len(lat), n)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return lat[len(lat)/2], lat[len(lat)*99/100]
}
