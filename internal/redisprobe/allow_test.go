package redisprobe

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stratops/stratops/internal/redisserver"
	"github.com/stratops/stratops/pkg/messaging"
)

func mustPolicy(t *testing.T, entries ...string) *AddressPolicy {
	t.Helper()
	p, err := ParseAddressPolicy(entries)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseAddressPolicy_NamesABadEntry(t *testing.T) {
	for _, bad := range []string{"10.0.0.0/33", "redis-[.example.com"} {
		if _, err := ParseAddressPolicy([]string{"ok.example.com", bad}); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("%q: error %v, want one naming the entry", bad, err)
		}
	}
	if p, err := ParseAddressPolicy([]string{"", " "}); p != nil || err != nil {
		t.Errorf("an empty list is any address (nil), got %v, %v", p, err)
	}
}

func TestAddressPolicy_Check(t *testing.T) {
	ctx := context.Background()
	p := mustPolicy(t, "*.redis.example.com", "10.20.0.0/16", "192.0.2.7", "2001:db8::/32")
	for addr, allowed := range map[string]bool{
		"a.redis.example.com:6379":  true,
		"A.Redis.Example.COM.:6379": true,
		"redis.example.com:6379":    false, // no resolvable name, no glob match
		"10.20.3.4:6379":            true,
		"10.21.0.1:6379":            false,
		"192.0.2.7:6379":            true,
		"192.0.2.8:6379":            false,
		"[2001:db8::1]:6379":        true,
		"[::ffff:10.20.0.9]:6379":   true,
		"localhost:6379":            false, // resolves to loopback, outside every CIDR
	} {
		_, err := p.Check(ctx, addr)
		if allowed && err != nil {
			t.Errorf("%s: refused: %v", addr, err)
		}
		if !allowed && err == nil {
			t.Errorf("%s: allowed", addr)
		}
	}
	_, err := p.Check(ctx, "localhost:6379")
	if !IsAddressNotAllowed(err) || !strings.Contains(err.Error(), "resolved to 127.0.0.1") && !strings.Contains(err.Error(), "resolved to ::1") {
		t.Errorf("a name is checked by what it resolves to: %v", err)
	}
	var nilPolicy *AddressPolicy
	if _, err := nilPolicy.Check(ctx, "anything:1"); err != nil {
		t.Errorf("no policy allows any address: %v", err)
	}
}

// The dialer holds the servers that discovery returns to the list: a
// Sentinel reached by an allowed name hands out its master as 127.0.0.1,
// which the list does not hold.
func TestAddressPolicy_DialerRefusesTheMasterASentinelNames(t *testing.T) {
	master, err := redisserver.Start(redisserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	sentinel, err := redisserver.Start(redisserver.Options{SentinelOf: master})
	if err != nil {
		t.Fatal(err)
	}
	defer sentinel.Close()
	_, port, _ := strings.Cut(sentinel.Addr, ":")
	cfg := messaging.RedisConfig{Topology: "Sentinel", Addrs: []string{"localhost:" + port}, MasterName: redisserver.SentinelMaster,
		DialTimeout: time.Second}

	ping := func(p *AddressPolicy) error {
		return withPolicy(t, cfg, p, func(ctx context.Context, c redis.UniversalClient) error { return c.Ping(ctx).Err() })
	}
	err = ping(mustPolicy(t, "localhost"))
	if err == nil || Classify(err) != ReasonAddressNotAllowed {
		t.Fatalf("the master 127.0.0.1 that the Sentinel names is outside the list: got %v (%s)", err, Classify(err))
	}
	if err := ping(mustPolicy(t, "localhost", "127.0.0.1")); err != nil {
		t.Fatalf("with the master's address allowed: %v", err)
	}
}

// The same for a Cluster: a seed reached by an allowed name, the slots on
// a node announced as 127.0.0.1.
func TestAddressPolicy_DialerRefusesTheNodesAClusterAnnounces(t *testing.T) {
	node, err := redisserver.Start(redisserver.Options{Cluster: true, Args: []string{"--cluster-announce-ip", "127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	admin := redis.NewClient(&redis.Options{Addr: node.Addr})
	defer admin.Close()
	ctx := context.Background()
	if err := admin.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", "0", "16383").Err(); err != nil {
		t.Fatal(err)
	}
	for admin.ClusterInfo(ctx).Val() == "" || !strings.Contains(admin.ClusterInfo(ctx).Val(), "cluster_state:ok") {
		time.Sleep(20 * time.Millisecond)
	}
	_, port, _ := strings.Cut(node.Addr, ":")
	cfg := messaging.RedisConfig{Topology: "Cluster", Addrs: []string{"localhost:" + port}, DialTimeout: time.Second}
	set := func(p *AddressPolicy) error {
		return withPolicy(t, cfg, p, func(ctx context.Context, c redis.UniversalClient) error {
			return c.Set(ctx, "k", "v", time.Minute).Err()
		})
	}
	if err := set(mustPolicy(t, "localhost")); err == nil || Classify(err) != ReasonAddressNotAllowed {
		t.Fatalf("the node 127.0.0.1 that the slots name is outside the list: got %v (%s)", err, Classify(err))
	}
	if err := set(mustPolicy(t, "localhost", "127.0.0.0/8")); err != nil {
		t.Fatalf("with the node's address allowed: %v", err)
	}
}

// withPolicy runs one command through a client whose dialer holds cfg to
// the policy.
func withPolicy(t *testing.T, cfg messaging.RedisConfig, p *AddressPolicy, cmd func(context.Context, redis.UniversalClient) error) error {
	t.Helper()
	cfg.Dialer = p.Dialer(time.Second)
	client, err := messaging.NewRedisClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return cmd(ctx, client)
}
