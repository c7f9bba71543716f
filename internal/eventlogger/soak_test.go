package eventlogger

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stratops/stratops/internal/eventlog"
	"github.com/stratops/stratops/internal/redisserver"
	"github.com/stratops/stratops/internal/redistest"
	"github.com/stratops/stratops/pkg/messaging"
)

// soakCycles is how many Redis kill/restart cycles the chaos soak runs:
// STRATOPS_SOAK_CYCLES (make soak sets 25), else a short 3 for make test.
func soakCycles() int {
	if n, err := strconv.Atoi(os.Getenv("STRATOPS_SOAK_CYCLES")); err == nil && n > 0 {
		return n
	}
	return 3
}

// TestSoak_RedisKilledAndRestartedUnderLoadLosesNothingAcknowledged is the
// chaos soak: steady HTTP ingest and pub/sub traffic while Redis (with
// appendfsync always, so that what it acknowledged survives) is killed and
// restarted again and again. Then: every event the logger acknowledged
// (202) is in the history exactly once, nothing is in it twice, and every
// published message missing from it was published inside a gap the logger
// reported.
func TestSoak_RedisKilledAndRestartedUnderLoadLosesNothingAcknowledged(t *testing.T) {
	ctx := context.Background()
	cycles := soakCycles()
	srv, err := redisserver.Start(redisserver.Options{Persist: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cat := liveCatalog(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond,
		ReadTimeout: time.Second, WriteTimeout: time.Second})
	defer client.Close()
	bus := newRedisLog(client, cat.KeyPrefix)
	svc := NewService(ServiceConfig{Catalog: cat, Out: &syncBuffer{}, StatsInterval: 100 * time.Millisecond, PingInterval: 100 * time.Millisecond}, bus, bus)
	defer runSpooled(t, svc, 64<<20)()
	api := newTestServer(t, svc)

	var (
		stop      atomic.Bool
		wg        sync.WaitGroup
		mu        sync.Mutex
		acked     = map[int]bool{} // HTTP seq → acknowledged
		published = map[int]time.Time{}
	)
	// HTTP: one event every 2 ms, retried until acknowledged.
	wg.Go(func() {
		for seq := 0; !stop.Load(); seq++ {
			body, _ := messaging.Envelope(time.Now(), "position_monitor", "updated", map[string]any{"seq": seq, "via": "http"})
			for !stop.Load() {
				resp, err := http.Post(api+"/events?channel=position:updated", "application/json", bytes.NewReader(body))
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode == http.StatusAccepted {
						mu.Lock()
						acked[seq] = true
						mu.Unlock()
						break
					}
				}
				time.Sleep(10 * time.Millisecond)
			}
			time.Sleep(2 * time.Millisecond)
		}
	})
	// Pub/sub: one message every 2 ms from a component of its own; only
	// those Redis took count.
	pub := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer pub.Close()
	wg.Go(func() {
		for seq := 0; !stop.Load(); seq++ {
			body, _ := messaging.Envelope(time.Now(), "risk_calculator", "calculated", map[string]any{"seq": seq, "via": "pubsub"})
			before := time.Now()
			if err := pub.Publish(ctx, cat.ChannelName("risk:calculated"), body).Err(); err == nil {
				mu.Lock()
				published[seq] = before
				mu.Unlock()
			}
			time.Sleep(2 * time.Millisecond)
		}
	})

	start := time.Now()
	for i := range cycles {
		time.Sleep(400 * time.Millisecond)
		if err := srv.Kill(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(100+100*(i%4)) * time.Millisecond)
		if err := srv.Restart(); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(400 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	eventually(t, "everything accepted is in the history", func() bool { return svc.Pending() == 0 })
	time.Sleep(300 * time.Millisecond)

	check := redistest.Client(t, srv.Addr)
	msgs, err := check.XRange(ctx, cat.KeyName(messaging.KeyEventsHistory), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	type key struct {
		via string
		seq int
	}
	inHistory := map[key]int{}
	var gaps []messaging.Gap
	for _, m := range msgs {
		e, err := entryOf(m.Values)
		if err != nil {
			t.Fatal(err)
		}
		if g, ok := gapOf(e); ok {
			gaps = append(gaps, g)
			continue
		}
		var md struct {
			Seq int
			Via string
		}
		if err := e.Event.Decode(&md); err != nil {
			t.Fatalf("history entry %s: %v", e.ID, err)
		}
		inHistory[key{md.Via, md.Seq}]++
	}
	dups := 0
	for k, n := range inHistory {
		if n > 1 {
			dups++
			t.Errorf("%s event %d is in the history %d times", k.via, k.seq, n)
		}
	}
	missingAcked := 0
	for seq := range acked {
		if inHistory[key{"http", seq}] == 0 {
			missingAcked++
		}
	}
	lostPub, outsideGap := 0, 0
	for seq, at := range published {
		if inHistory[key{"pubsub", seq}] > 0 {
			continue
		}
		lostPub++
		inGap := false
		for _, g := range gaps {
			if !at.Before(g.Start.Add(-50*time.Millisecond)) && !at.After(g.End.Add(50*time.Millisecond)) {
				inGap = true
			}
		}
		if !inGap {
			outsideGap++
		}
	}
	t.Logf("soak: %d Redis kill/restart cycles in %s; %d HTTP events acknowledged, %d missing from the history; %d published, %d lost, %d of those outside a reported gap; %d gaps reported; %d duplicates",
		cycles, time.Since(start).Round(time.Millisecond), len(acked), missingAcked, len(published), lostPub, outsideGap, len(gaps), dups)
	if missingAcked > 0 {
		t.Errorf("%d acknowledged events are not in the history", missingAcked)
	}
	if outsideGap > 0 {
		t.Errorf("%d published messages were lost outside any reported gap", outsideGap)
	}
	if len(acked) == 0 || len(published) == 0 {
		t.Fatal("no traffic")
	}
	if len(gaps) == 0 {
		t.Error("no gap was reported across the Redis restarts")
	}
}

// gapOf reads a gap event of the history: its start and end.
func gapOf(e eventlog.LogEntry) (messaging.Gap, bool) {
	if e.Channel != ChannelGap {
		return messaging.Gap{}, false
	}
	var g struct{ Start, End string }
	_ = e.Event.Decode(&g)
	start, _ := messaging.ParseTimestamp(g.Start)
	end, _ := messaging.ParseTimestamp(g.End)
	return messaging.Gap{Start: start, End: end}, true
}

// entryOf reads a history entry as the bus writes it.
func entryOf(v map[string]any) (eventlog.LogEntry, error) {
	str := func(k string) string { s, _ := v[k].(string); return s }
	cat := messaging.Standard(messaging.ModeLive)
	e, err := cat.DecodeEvent(str("channel"), []byte(str("message")), messaging.DecodeOptions{MaxBytes: 1 << 20, Received: time.Now()})
	return eventlog.LogEntry{ID: str("id"), Channel: str("channel"), Event: e}, err
}
