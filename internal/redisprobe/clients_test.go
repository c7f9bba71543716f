package redisprobe

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/stratops/stratops/pkg/messaging"
)

func TestClients_SharedPerSettingAndClosedWithTheLastUser(t *testing.T) {
	cs := NewClients()
	var open int
	cs.OnChange = func(n int) { open = n }
	cfg := messaging.RedisConfig{Addrs: []string{server.Addr}, Password: "a"}
	a, err := cs.Acquire("ns/a", cfg, messaging.NewRedisClient)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := cs.Acquire("ns/b", cfg, messaging.NewRedisClient)
	if a != b || open != 1 {
		t.Fatalf("two Strategies with one setting should share one client (open %d)", open)
	}
	rotated := cfg
	rotated.Password = "b"
	c, _ := cs.Acquire("ns/b", rotated, messaging.NewRedisClient)
	if c == a || open != 2 {
		t.Fatalf("a new password must give a new client (open %d)", open)
	}
	cs.Release("ns/a")
	if open != 1 {
		t.Fatalf("open %d after the last user of the first setting left, want 1", open)
	}
	if err := a.(*redis.Client).Ping(t.Context()).Err(); err != redis.ErrClosed {
		t.Fatalf("the unused client should be closed, Ping says %v", err)
	}
	cs.Release("ns/b")
	cs.Release("ns/b") // twice is harmless
	if cs.Open() != 0 {
		t.Fatalf("%d clients open, want 0", cs.Open())
	}
}

func TestSettingKey_EveryIdentityIsItsOwn(t *testing.T) {
	base := messaging.RedisConfig{Addrs: []string{"redis:6379"}, TLS: true, CAPEM: []byte("ca")}
	withCert := base
	withCert.ClientCertPEM, withCert.ClientKeyPEM = []byte("cert-a"), []byte("key-a")
	otherCert := base
	otherCert.ClientCertPEM, otherCert.ClientKeyPEM = []byte("cert-b"), []byte("key-b")
	keys := map[string]string{"no cert": SettingKey(base), "cert a": SettingKey(withCert), "cert b": SettingKey(otherCert)}
	seen := map[string]string{}
	for name, k := range keys {
		if other, dup := seen[k]; dup {
			t.Fatalf("%s and %s share a client: a Strategy would connect with another's certificate", name, other)
		}
		seen[k] = name
	}
}
