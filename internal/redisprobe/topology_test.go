package redisprobe

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stratops/stratops/internal/eventlog"
	"github.com/stratops/stratops/internal/redisserver"
	"github.com/stratops/stratops/internal/redistest"
	"github.com/stratops/stratops/pkg/messaging"
)

// roundOn runs a probe round through the client the operator would make
// from cfg.
func roundOn(t *testing.T, cfg messaging.RedisConfig, cluster bool) Report {
	t.Helper()
	c, err := messaging.NewRedisClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return Run(context.Background(), c, Options{Prefix: "topo:", Timeout: 3 * time.Second, Cluster: cluster})
}

func mustFail(t *testing.T, rep Report, probe, reason string) Result {
	t.Helper()
	f, failed := rep.Failed()
	if !failed || f.Name != probe || f.Reason != reason {
		t.Fatalf("want probe %s failing %s, got %+v (report %+v)", probe, reason, f, rep.Probes)
	}
	return f
}

// TestTopology_TLS: a TLS-only redis-server (certificates made here). The
// gate opens with the right CA; a wrong CA, a wrong server name and a
// missing client certificate where one is required are TLSError.
func TestTopology_TLS(t *testing.T) {
	pki, err := redisserver.NewPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	other, err := redisserver.NewPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := redisserver.Start(redisserver.Options{TLS: pki})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cfg := messaging.RedisConfig{Addrs: []string{srv.Addr}, TLS: true, CAPEM: pki.CAPEM, DialTimeout: time.Second}
	if rep := roundOn(t, cfg, false); !rep.OK() {
		t.Fatalf("the gate does not open on TLS with the right CA: %+v", rep.Probes)
	}
	wrongCA := cfg
	wrongCA.CAPEM = other.CAPEM
	mustFail(t, roundOn(t, wrongCA, false), ProbeConnect, ReasonTLSError)
	wrongName := cfg
	wrongName.ServerName = "not-the-redis.example"
	mustFail(t, roundOn(t, wrongName, false), ProbeConnect, ReasonTLSError)
	plain := messaging.RedisConfig{Addrs: []string{srv.Addr}, DialTimeout: time.Second}
	if rep := roundOn(t, plain, false); rep.OK() {
		t.Fatal("a plain client passed the round against a TLS-only server")
	}

	mtls, err := redisserver.Start(redisserver.Options{TLS: pki, TLSClientAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	defer mtls.Close()
	noCert := cfg
	noCert.Addrs = []string{mtls.Addr}
	mustFail(t, roundOn(t, noCert, false), ProbeConnect, ReasonTLSError)
}

// TestTopology_TimeoutAuthAndPermission: a listener that accepts and never
// answers is Timeout; an ACL user with a wrong password is AuthFailed; one
// without SET is PermissionDenied, the command named.
func TestTopology_TimeoutAuthAndPermission(t *testing.T) {
	hole, err := redisserver.StartBlackHole()
	if err != nil {
		t.Fatal(err)
	}
	defer hole.Close()
	mustFail(t, roundOn(t, messaging.RedisConfig{Addrs: []string{hole.Addr}, DialTimeout: 500 * time.Millisecond,
		ReadTimeout: 500 * time.Millisecond}, false), ProbeConnect, ReasonTimeout)

	ctx := context.Background()
	srv, err := redisserver.Start(redisserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	admin := redistest.Client(t, srv.Addr)
	if err := admin.Do(ctx, "ACL", "SETUSER", "trader", "on", ">right", "~*", "&*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	if err := admin.Do(ctx, "ACL", "SETUSER", "noset", "on", ">right", "~*", "&*", "+@all", "-set").Err(); err != nil {
		t.Fatal(err)
	}
	f := mustFail(t, roundOn(t, messaging.RedisConfig{Addrs: []string{srv.Addr}, Username: "trader", Password: "wrong"}, false), ProbeConnect, ReasonAuthFailed)
	if strings.Contains(f.Message, "wrong") {
		t.Fatal("the password is in the probe's message")
	}
	if rep := roundOn(t, messaging.RedisConfig{Addrs: []string{srv.Addr}, Username: "trader", Password: "right"}, false); !rep.OK() {
		t.Fatalf("the gate does not open for the ACL user: %+v", rep.Probes)
	}
	f = mustFail(t, roundOn(t, messaging.RedisConfig{Addrs: []string{srv.Addr}, Username: "noset", Password: "right"}, false), ProbeWriteTTL, ReasonPermissionDenied)
	if !strings.Contains(strings.ToLower(f.Message), "set") {
		t.Fatalf("PermissionDenied does not name the command: %s", f.Message)
	}
}

// TestTopology_Cluster: three masters with a replica each. The gate opens;
// the standard's keys, written on their slots, and a subscriber on one
// node read as healthy across the nodes.
func TestTopology_Cluster(t *testing.T) {
	ctx := context.Background()
	cl, err := redisserver.StartCluster(3, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	cfg := messaging.RedisConfig{Topology: "Cluster", Addrs: cl.Addrs()[:1], DialTimeout: time.Second}
	if rep := roundOn(t, cfg, true); !rep.OK() {
		t.Fatalf("the gate does not open on the Cluster: %+v", rep.Probes)
	}
	c, err := messaging.NewRedisClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cat := messaging.Standard(messaging.ModeLive)
	cat.KeyPrefix = "cl:"
	for _, k := range cat.Keys {
		if k.Name == messaging.KeyEventsHistory {
			continue
		}
		if err := c.Set(ctx, cat.KeyName(k.Name), `{"timestamp":"`+messaging.FormatTimestamp(time.Now())+`"}`, k.TTL.Duration).Err(); err != nil {
			t.Fatalf("SET %s on the Cluster: %v", k.Name, err)
		}
	}
	bus := eventlog.NewRedisStore(c, eventlog.RedisStoreOptions{KeyPrefix: cat.KeyPrefix})
	if err := bus.Record(ctx, []eventlog.LogEntry{{ID: "e1", Channel: "position:updated", LoggedAt: time.Now(),
		Event: messaging.Event{Timestamp: time.Now(), Payload: []byte(`{}`)}}}); err != nil {
		t.Fatalf("the logger's history write on the Cluster: %v", err)
	}
	if held, _, err := bus.AcquireLease(ctx, "v|h", time.Minute); err != nil || !held {
		t.Fatalf("the logger's lease on the Cluster: held %v, %v", held, err)
	}
	for i, fence := range []string{"", "v|h"} {
		if err := bus.RecordFenced(ctx, []eventlog.LogEntry{{ID: fmt.Sprintf("f%d", i), Channel: "position:updated", LoggedAt: time.Now(),
			Event: messaging.Event{Timestamp: time.Now(), Payload: []byte(`{}`)}}}, fence); err != nil {
			t.Fatalf("the logger's fenced history script on the Cluster (history and lease on one slot), fence %q: %v", fence, err)
		}
	}
	// A subscriber connected to one node: NUMSUB is summed over all.
	sub := redis.NewClient(&redis.Options{Addr: cl.Nodes[len(cl.Nodes)-1].Addr})
	defer sub.Close()
	ps := sub.Subscribe(ctx, cat.ChannelName("position:updated"))
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	h, err := ReadHealth(ctx, c, cat, time.Now())
	if err != nil {
		t.Fatalf("the read-out on the Cluster: %v", err)
	}
	for _, k := range h.Keys {
		if !k.Healthy {
			t.Errorf("key %s: %s", k.Name, k.Reason)
		}
	}
	for _, ch := range h.Channels {
		if ch.Name == "position:updated" && ch.Subscribers != 1 {
			t.Errorf("position:updated: %d subscribers summed over the nodes, want 1", ch.Subscribers)
		}
	}
}
