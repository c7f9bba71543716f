package eventlogger

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stratops/stratops/internal/redistest"
	"github.com/stratops/stratops/pkg/messaging"
)

// TestSentinel_TheLoggerFollowsAFailover: a master, two replicas and
// three Sentinels (down after 1 s). The master is SIGKILLed under traffic;
// once a replica is promoted, the logger (on a Sentinel client) writes to
// it: what is published on the new master is logged, and the figure is the
// time from the kill to the first such event in the history.
func TestSentinel_TheLoggerFollowsAFailover(t *testing.T) {
	ctx := context.Background()
	g, err := redistest.StartSentinelGroup(2, 3, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	cfg := messaging.RedisConfig{Topology: "Sentinel", Addrs: g.SentinelAddrs(), MasterName: redistest.SentinelMaster,
		DialTimeout: 500 * time.Millisecond, ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond}
	client, err := messaging.NewRedisClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	cat := liveCatalog(t)
	bus := messaging.NewRedisBus(client, messaging.RedisBusOptions{KeyPrefix: cat.KeyPrefix})
	r := startService(t, bus, ServiceConfig{Catalog: cat})
	_ = r
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
	killed := time.Now()
	if err := g.Master.Kill(); err != nil {
		t.Fatal(err)
	}
	sentinel := redis.NewSentinelClient(&redis.Options{Addr: g.Sentinels[0].Addr})
	defer sentinel.Close()
	var promoted time.Time
	deadline := time.Now().Add(30 * time.Second)
	for i := 100; ; i++ {
		if time.Now().After(deadline) {
			t.Fatal("no event published after the failover reached the history within 30s")
		}
		if promoted.IsZero() {
			if a, err := sentinel.GetMasterAddrByName(ctx, redistest.SentinelMaster).Result(); err == nil && a[0]+":"+a[1] != oldMaster {
				promoted = time.Now()
			}
		}
		_ = publish(i)
		h, _, err := bus.History(ctx, 1, "")
		if err == nil && len(h) == 1 && seqOf(h[0]) >= 100 {
			t.Logf("master SIGKILLed; Sentinel promoted a replica after %s; the first event after the kill was in the history %s after it",
				promoted.Sub(killed).Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
}
