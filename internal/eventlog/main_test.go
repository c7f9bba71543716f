package eventlog

import (
	"os"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/stratops/stratops/internal/redisserver"
	"github.com/stratops/stratops/internal/redistest"
)

// redisServer is the package's shared redis-server (REDIS_ADDR, or one
// started here). Tests that stop Redis start their own.
var redisServer *redisserver.Server

func TestMain(m *testing.M) { os.Exit(redistest.Main(m, &redisServer)) }

func newClient(t testing.TB, addr string) *redis.Client { return redistest.Client(t, addr) }

// prefixFor gives each test its own key prefix.
func prefixFor(t testing.TB) string { return redistest.KeyPrefix(t) }
