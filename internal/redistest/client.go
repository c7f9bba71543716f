// Package redistest holds the test helpers that take a *testing.T or
// *testing.M around the servers of package redisserver: a client that
// fails the test, a key prefix of the test's own, a TestMain body.
package redistest

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/stratops/stratops/internal/redisserver"
)

// Client connects to addr for the length of a test, and fails the test
// when the server does not answer.
func Client(t testing.TB, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: 1})
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("redis at %s: %v", addr, err)
	}
	return c
}

// KeyPrefix is a key prefix of the test's own, so that tests sharing a
// server never see each other's keys.
func KeyPrefix(t testing.TB) string {
	return "test-" + fmt.Sprint(os.Getpid()) + "-" + t.Name() + ":"
}

// Main runs a package's tests with a shared server (REDIS_ADDR, or one it
// starts), which it stops at the end: the body of a TestMain.
func Main(m *testing.M, server **redisserver.Server) int {
	s, err := redisserver.Shared()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	*server = s
	defer s.Close()
	return m.Run()
}
