package eventlogger

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stratops/stratops/internal/redisserver"
	"github.com/stratops/stratops/internal/redistest"
	"github.com/stratops/stratops/pkg/messaging"
)

// TestSentinel_TheLoggerFollowsAFailover: a master, two replicas and
// three Sentinels (down after 2 s). The master is SIGKILLed under steady
// traffic; once a replica is promoted, the logger (on a Sentinel client)
// writes to it. Every message Redis took is in the history once, or in a
// gap the logger reported; the figures are the time from the kill to the
// promotion and to the first event after it in the history.
func TestSentinel_TheLoggerFollowsAFailover(t *testing.T) {
	ctx := context.Background()
	g, err := redisserver.StartSentinelGroup(2, 3, redisserver.MinSentinelDownAfter)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	cfg := messaging.RedisConfig{Topology: "Sentinel", Addrs: g.SentinelAddrs(), MasterName: redisserver.SentinelMaster,
		DialTimeout: 500 * time.Millisecond, ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond}
	client, err := messaging.NewRedisClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	cat := liveCatalog(t)
	bus := newRedisLog(client, cat.KeyPrefix)
	r := startService(t, bus, ServiceConfig{Catalog: cat, Log: slog.Default()})
	pub, err := messaging.NewRedisClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	publish := func(i int) error {
		return pub.Publish(ctx, cat.ChannelName("position:updated"), event(i)).Err()
	}
	for i := range 10 {
		if err := publish(i); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the first events in the history", func() bool {
		h, _, _ := bus.History(ctx, 100, "")
		return len(h) == 10
	})
	oldMaster := g.Master.Addr
	// Steady traffic through the failover, one message every 5 ms: those
	// Redis took (PUBLISH answered) must each be in the history once, or
	// fall in a gap the logger reported.
	type sent struct {
		seq int
		at  time.Time
	}
	var published []sent
	killed := time.Now()
	if err := g.Master.Kill(); err != nil {
		t.Fatal(err)
	}
	sentinel := redis.NewSentinelClient(&redis.Options{Addr: g.Sentinels[0].Addr})
	defer sentinel.Close()
	var promoted, resumed time.Time
	masters := map[string]bool{}
	for i := 100; time.Since(killed) < 10*time.Second; i++ {
		if a, err := sentinel.GetMasterAddrByName(ctx, redisserver.SentinelMaster).Result(); err == nil && a[0]+":"+a[1] != oldMaster {
			masters[a[0]+":"+a[1]] = true
			if promoted.IsZero() {
				promoted = time.Now()
			}
		}
		at := time.Now()
		if err := publish(i); err == nil {
			published = append(published, sent{i, at})
		}
		if resumed.IsZero() {
			if h, _, err := bus.History(ctx, 1, ""); err == nil && len(h) == 1 && seqOf(h[0]) >= 100 {
				resumed = time.Now()
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	if promoted.IsZero() || resumed.IsZero() {
		t.Fatalf("no failover within 10s (promoted %v, logging resumed %v)", !promoted.IsZero(), !resumed.IsZero())
	}
	if len(masters) > 1 {
		// Redis itself dropped what the first new master took: not the
		// logger's loss, and not what this test measures.
		t.Fatalf("Sentinel failed over more than once (masters %v): the group's down-after is too short for this machine", masters)
	}
	eventually(t, "the logger has written what it took", func() bool { return r.svc.Pending() == 0 })
	time.Sleep(500 * time.Millisecond)
	h, _, err := bus.History(ctx, 10000, "")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]int{}
	var gaps []redistest.Span
	for _, e := range h {
		if gp, ok := gapOf(e); ok {
			gaps = append(gaps, redistest.Span{Start: gp.Start, End: gp.End})
			continue
		}
		seen[seqOf(e)]++
	}
	minSeq, maxSeq := 1<<30, -1
	for k := range seen {
		minSeq, maxSeq = min(minSeq, k), max(maxSeq, k)
	}
	t.Logf("history: %d entries, seqs %d..%d, %d gaps; published %d..%d", len(h), minSeq, maxSeq, len(gaps), published[0].seq, published[len(published)-1].seq)
	took := map[int]time.Time{}
	for _, p := range published {
		took[p.seq] = p.at
	}
	lost, outside, dup := redistest.Tally(took, seen, gaps)
	t.Logf("master SIGKILLed; Sentinel promoted a replica after %s; logging resumed %s after the kill; %d messages taken by Redis through the failover, %d lost (%d outside the %d reported gaps), %d duplicated",
		promoted.Sub(killed).Round(time.Millisecond), resumed.Sub(killed).Round(time.Millisecond), len(published), lost, outside, len(gaps), dup)
	if dup > 0 || outside > 0 {
		t.Fatalf("%d duplicated, %d lost outside a reported gap; want none", dup, outside)
	}
}
