// Command sampleengine is a stand-in strategy engine: it plays the Redis
// messaging standard's chain of components (position → exposure → risk →
// P&L and strategy manager) against the Redis and catalog a Strategy hands
// its engine (STRATOPS_* environment), with a malformed message now and
// then. Use it as spec.engine, or to see stratops at work.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	el "github.com/stratops/stratops/internal/eventlogger"
	"github.com/stratops/stratops/internal/sampleengine"
)

func main() {
	interval := flag.Duration("interval", time.Second, "time between position updates")
	malformed := flag.Int("malformed-every", 10, "publish a malformed message every N updates (0: never)")
	flag.Parse()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := run(*interval, *malformed, log); err != nil {
		fmt.Fprintln(os.Stderr, "sampleengine:", err)
		os.Exit(1)
	}
}

func run(interval time.Duration, malformed int, log *slog.Logger) error {
	cat, err := el.LoadCatalog(os.Getenv(el.EnvCatalogFile), el.Mode(os.Getenv(el.EnvMode)))
	if err != nil {
		return err
	}
	if p := os.Getenv(el.EnvKeyPrefix); p != "" {
		cat.KeyPrefix = p
	}
	cfg := el.RedisConfigFromEnv()
	if !cfg.Configured() {
		return fmt.Errorf("no Redis configured (%s): the sample engine talks through Redis", el.EnvRedisAddrs)
	}
	client, err := el.NewRedisClient(cfg)
	if err != nil {
		return err
	}
	bus := el.NewRedisBus(client, el.RedisBusOptions{KeyPrefix: cat.KeyPrefix})
	defer bus.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	// Wait for Redis: an engine starts once the gate passed, but Redis may
	// blink.
	for bus.Ping(ctx) != nil {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	log.Info("Sample engine started", "prefix", cat.KeyPrefix, "interval", interval)
	return sampleengine.Run(ctx, bus, cat, sampleengine.Options{Interval: interval, MalformedEvery: malformed, Log: log})
}
