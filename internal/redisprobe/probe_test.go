package redisprobe

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stratops/stratops/internal/eventlog"
	"github.com/stratops/stratops/internal/redisserver"
	"github.com/stratops/stratops/pkg/messaging"
)

func TestRun_AllProbesPassOnAWritableMasterAndLeaveOnlyExpiringKeys(t *testing.T) {
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: server.Addr})
	defer c.Close()
	rep := Run(ctx, c, Options{Prefix: "probe-test:", Timeout: time.Second})
	if !rep.OK() || rep.Role != "master" || rep.ServerVersion == "" {
		t.Fatalf("report %+v", rep)
	}
	names := []string{ProbeConnect, ProbePing, ProbeRole, ProbeWriteTTL, ProbePubSub, ProbeCommands}
	for i, p := range rep.Probes {
		if p.Name != names[i] || !p.OK {
			t.Fatalf("probe %d: %+v", i, p)
		}
	}
	keys := c.Keys(ctx, "probe-test:*").Val()
	for _, k := range keys {
		if ttl := c.TTL(ctx, k).Val(); ttl <= 0 || ttl > probeKeyTTL {
			t.Fatalf("probe key %s has TTL %v: it must expire on its own", k, ttl)
		}
	}
	if len(c.Keys(ctx, "stratops:*").Val()) != 0 {
		t.Fatal("a probe key was written outside the prefix")
	}
}

func TestRun_ReasonsForAStoppedServerAndAReplica(t *testing.T) {
	ctx := context.Background()
	replica, err := redisserver.Start(redisserver.Options{ReplicaOf: server})
	if err != nil {
		t.Fatal(err)
	}
	defer replica.Close()
	// Configured as the operator configures its clients.
	rc, err := messaging.NewRedisClient(messaging.RedisConfig{Addrs: []string{replica.Addr}, DialTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	rep := Run(ctx, rc, Options{Timeout: time.Second})
	if f, _ := rep.Failed(); f.Name != ProbeRole || f.Reason != ReasonReadOnlyReplica || rep.Role != "replica" {
		t.Fatalf("replica: %+v", rep)
	}
	_ = replica.Stop()
	rep = Run(ctx, rc, Options{Timeout: 2 * time.Second})
	f, _ := rep.Failed()
	if f.Name != ProbeConnect || f.Reason != ReasonUnreachable {
		t.Fatalf("stopped server: %+v", f)
	}
	if rep.Probes[1].Reason != ReasonSkipped {
		t.Fatalf("after a failed connect the rest are skipped: %+v", rep.Probes[1])
	}
}

func TestReadHealth_ReasonsForKeysAndChannels(t *testing.T) {
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: server.Addr})
	defer c.Close()
	cat := messaging.Catalog{
		Mode: messaging.ModeLive, KeyPrefix: "health-test:",
		Channels: []messaging.Channel{
			{Name: "a:quiet", MinSubscribers: 0, MaxSilence: messaging.Duration{Duration: time.Minute}},
			{Name: "a:fine", MinSubscribers: 0},
			{Name: "a:garbled", MinSubscribers: 0},
			{Name: "a:strict", MinSubscribers: 0, MaxInvalidRatio: new(0.0)},
			{Name: "a:slow", MinSubscribers: 0, MaxLag: messaging.Duration{Duration: 500 * time.Millisecond}},
			{Name: "a:quick", MinSubscribers: 0, MaxLag: messaging.Duration{Duration: 500 * time.Millisecond}},
		},
		Keys: []messaging.Key{
			{Name: "k:stale", TTL: messaging.Duration{Duration: time.Hour}, MaxAge: messaging.Duration{Duration: time.Minute}},
			{Name: "k:long", TTL: messaging.Duration{Duration: time.Hour}},
			{Name: "k:bloat", TTL: messaging.Duration{Duration: time.Hour}},
			{Name: "k:fresh", TTL: messaging.Duration{Duration: time.Hour}, MaxAge: messaging.Duration{Duration: time.Minute}},
			{Name: "k:config"},
			{Name: "k:gone", TTL: messaging.Duration{Duration: time.Hour}},
			{Name: "k:python", TTL: messaging.Duration{Duration: time.Hour}, MaxAge: messaging.Duration{Duration: time.Minute}},
			{Name: "k:untimed", TTL: messaging.Duration{Duration: time.Hour}, MaxAge: messaging.Duration{Duration: time.Minute}},
		},
	}
	now := time.Now()
	// What the event logger reports of the last health window: a channel
	// of mostly invalid messages (51 of 81, as a user saw it), one invalid
	// message where none is allowed, and a p99 lag above and below maxLag.
	bus := eventlog.NewRedisStore(c, eventlog.RedisStoreOptions{KeyPrefix: cat.KeyPrefix})
	if err := bus.WriteStats(ctx, eventlog.StatsUpdate{
		Counters: map[string]eventlog.ChannelStats{"a:garbled": {Messages: 30, Invalid: 51, LastMessageTime: now}},
		Windows: map[string]eventlog.WindowStats{
			"a:garbled": {Messages: 30, Invalid: 51}, "a:fine": {Messages: 100, Invalid: 5},
			"a:strict": {Messages: 100, Invalid: 1},
			"a:slow":   {Messages: 10, LagSamples: 10, LagP50: 100 * time.Millisecond, LagP99: 800 * time.Millisecond},
			"a:quick":  {Messages: 10, LagSamples: 10, LagP50: 100 * time.Millisecond, LagP99: 400 * time.Millisecond},
		},
		WindowLength: time.Minute, At: now,
	}); err != nil {
		t.Fatal(err)
	}
	old := now.Add(-time.Hour).UTC().Format(time.RFC3339)
	c.Set(ctx, "health-test:k:stale", `{"timestamp":"`+old+`"}`, time.Hour)
	c.Set(ctx, "health-test:k:long", `{}`, 2*time.Hour)
	c.Set(ctx, "health-test:k:bloat", `{}`, 0)
	c.Set(ctx, "health-test:k:fresh", `{"timestamp":"`+now.UTC().Format(time.RFC3339)+`"}`, time.Hour)
	c.Set(ctx, "health-test:k:config", `{}`, 0)
	c.Set(ctx, "health-test:k:python", `{"timestamp": "`+now.UTC().Format("2006-01-02T15:04:05.000000")+`", "wallet": {}}`, time.Hour)
	c.Set(ctx, "health-test:k:untimed", `{"wallet": {}}`, time.Hour)
	h, err := ReadHealth(ctx, c, cat, now)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"k:stale": ReasonStale, "k:long": ReasonTTLExceedsPolicy, "k:bloat": ReasonNoExpiry,
		"k:fresh": "", "k:config": "", "k:gone": ReasonMissing, "k:python": "", "k:untimed": ReasonInvalidValue}
	for _, k := range h.Keys {
		if k.Reason != want[k.Name] || k.Healthy != (want[k.Name] == "") {
			t.Errorf("key %s: healthy %t reason %q, want %q", k.Name, k.Healthy, k.Reason, want[k.Name])
		}
	}
	wantCh := map[string]string{"a:quiet": ReasonSilent, "a:fine": "", "a:garbled": ReasonInvalidMessages,
		"a:strict": ReasonInvalidMessages, "a:slow": ReasonLagging, "a:quick": ""}
	for _, ch := range h.Channels {
		if ch.Reason != wantCh[ch.Name] || ch.Healthy != (wantCh[ch.Name] == "") {
			t.Errorf("channel %s: healthy %t reason %q, want %q (%+v)", ch.Name, ch.Healthy, ch.Reason, wantCh[ch.Name], ch.Window)
		}
	}
	// A window the logger stopped updating long ago decides nothing.
	h, err = ReadHealth(ctx, c, cat, now.Add(10*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range h.Channels {
		if ch.WindowOK || ch.Reason == ReasonInvalidMessages || ch.Reason == ReasonLagging {
			t.Errorf("channel %s judged on a stale window: %+v", ch.Name, ch)
		}
	}
}
