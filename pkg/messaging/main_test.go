package messaging

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/stratops/stratops/internal/redistest"
)

// redisServer is the package's shared redis-server (REDIS_ADDR, or one
// started here). Tests that stop Redis start their own.
var redisServer *redistest.Server

func TestMain(m *testing.M) {
	s, err := redistest.Shared()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	redisServer = s
	code := m.Run()
	s.Close()
	os.Exit(code)
}

// newClient connects to addr; each test uses its own key prefix so that
// tests never see each other's keys.
func newClient(t testing.TB, addr string) redis.UniversalClient {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: 1})
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("redis at %s: %v", addr, err)
	}
	return c
}

// prefixFor gives each test its own key prefix.
func prefixFor(t testing.TB) string { return "test-" + fmt.Sprint(os.Getpid()) + "-" + t.Name() + ":" }
