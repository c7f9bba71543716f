package redisprobe

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stratops/stratops/internal/eventlog"
	"github.com/stratops/stratops/internal/redisserver"
	"github.com/stratops/stratops/internal/redistest"
	"github.com/stratops/stratops/pkg/messaging"
)

// TestRun_ARedisThatRefusesTheLoggersWritesFailsTheRound: the gate's round
// exercises what the event logger will do, so what would leave it writing
// nothing is caught before rollout, named.
func TestRun_ARedisThatRefusesTheLoggersWritesFailsTheRound(t *testing.T) {
	ctx := context.Background()
	srv, err := redisserver.Start(redisserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	admin := redistest.Client(t, srv.Addr)

	failed := func(t *testing.T, c redis.UniversalClient, prefix string) Result {
		t.Helper()
		rep := Run(ctx, c, Options{Prefix: prefix, Timeout: time.Second})
		f, ok := rep.Failed()
		if !ok {
			t.Fatalf("the round passed: %+v", rep)
		}
		return f
	}
	t.Run("an ACL that allows what the README once listed, but not XADD", func(t *testing.T) {
		if err := admin.Do(ctx, "ACL", "SETUSER", "narrow", "on", ">pw", "~*", "&*", "-@all", "+@connection",
			"+info", "+ping", "+role", "+set", "+ttl", "+publish", "+subscribe", "+unsubscribe").Err(); err != nil {
			t.Fatal(err)
		}
		c := redis.NewClient(&redis.Options{Addr: srv.Addr, Username: "narrow", Password: "pw", MaxRetries: -1})
		defer c.Close()
		f := failed(t, c, "narrow:")
		if f.Name != ProbeCommands || f.Reason != ReasonPermissionDenied || !strings.Contains(strings.ToLower(f.Message), "xadd") {
			t.Fatalf("want the commands probe failing PermissionDenied naming xadd, got %+v", f)
		}
	})
	t.Run("events:history written as a string", func(t *testing.T) {
		if err := admin.Set(ctx, "wt:"+messaging.KeyEventsHistory, "x", 0).Err(); err != nil {
			t.Fatal(err)
		}
		f := failed(t, admin, "wt:")
		if f.Name != ProbeCommands || f.Reason != ReasonWrongType || !strings.Contains(f.Message, "wt:events:history holds a string") {
			t.Fatalf("want WrongType naming the key, got %+v", f)
		}
	})
	t.Run("maxmemory with noeviction", func(t *testing.T) {
		if err := admin.Set(ctx, "ballast", strings.Repeat("x", 2<<20), 0).Err(); err != nil {
			t.Fatal(err)
		}
		if err := admin.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err(); err != nil {
			t.Fatal(err)
		}
		if err := admin.ConfigSet(ctx, "maxmemory", "1mb").Err(); err != nil {
			t.Fatal(err)
		}
		defer admin.ConfigSet(ctx, "maxmemory", "0")
		f := failed(t, admin, "oom:")
		if f.Reason != ReasonOutOfMemory {
			t.Fatalf("want OutOfMemory, got %+v", f)
		}
	})
}

func TestClaimPrefix_OneOwnerAPrefixAndANewOwnerGetsFreshStats(t *testing.T) {
	ctx := context.Background()
	c := redistest.Client(t, server.Addr)
	prefix := redistest.KeyPrefix(t)
	a := Owner{UID: "uid-a", Namespace: "team-a", Name: "s"}
	b := Owner{UID: "uid-b", Namespace: "team-b", Name: "s"}
	stats := prefix + messaging.KeyChannelStats
	// Counters a former owner left behind.
	c.HSet(ctx, stats, "position:updated|messages", 500)
	if _, ok, err := ClaimPrefix(ctx, c, prefix, a, time.Minute); !ok || err != nil {
		t.Fatalf("the first claim: %v %v", ok, err)
	}
	h := c.HGetAll(ctx, stats).Val()
	if h["position:updated|messages"] != "" || h[eventlog.StatsOwnerField] != "uid-a" {
		t.Fatalf("the stats were not reset for the new owner: %v", h)
	}
	if ttl := c.TTL(ctx, stats).Val(); ttl <= 0 {
		t.Fatalf("the stats hash has no TTL (%v)", ttl)
	}
	holder, ok, err := ClaimPrefix(ctx, c, prefix, b, time.Minute)
	if ok || err != nil || holder != a {
		t.Fatalf("a second Strategy's claim: ok %v, holder %+v, %v; want refused, held by a", ok, holder, err)
	}
	c.HIncrBy(ctx, stats, "position:updated|messages", 3)
	if _, ok, _ := ClaimPrefix(ctx, c, prefix, a, time.Minute); !ok {
		t.Fatal("the owner's renewal was refused")
	}
	if c.HGet(ctx, stats, "position:updated|messages").Val() != "3" {
		t.Fatal("a renewal reset the owner's own stats")
	}
	// Lapsed: the other may claim it.
	c.Del(ctx, prefix+OwnerKey)
	if _, ok, _ := ClaimPrefix(ctx, c, prefix, b, time.Minute); !ok {
		t.Fatal("a lapsed claim was not taken")
	}
}
