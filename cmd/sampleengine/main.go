// Command sampleengine is a stand-in strategy engine: it plays the chain of
// components its Strategy's catalog describes (in the standard: position →
// exposure → risk → P&L and strategy manager), written on pkg/messaging as
// a user's engine would be, with a malformed message now and then. Use it as
// spec.engine, or to see stratops at work.
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

	"github.com/stratops/stratops/internal/sampleengine"
	"github.com/stratops/stratops/internal/version"
	"github.com/stratops/stratops/pkg/messaging"
)

func main() {
	interval := flag.Duration("interval", time.Second, "time between position updates")
	malformed := flag.Int("malformed-every", 20, "publish a malformed message every N updates (0: never)")
	printVersion := flag.Bool("version", false, "print the version, the commit and the Go version, and exit")
	flag.Parse()
	if *printVersion {
		fmt.Println(version.String("sampleengine"))
		return
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := run(*interval, *malformed, log); err != nil {
		fmt.Fprintln(os.Stderr, "sampleengine:", err)
		os.Exit(1)
	}
}

func run(interval time.Duration, malformed int, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	// The environment the operator gave the pod: the catalog, the mode and
	// Redis. Live without Redis fails here; a backtest without it runs on
	// the in-process bus and forwards its events to the event logger.
	c, err := messaging.ConnectFromEnv(ctx, messaging.Options{Log: log, ConnectTimeout: 30 * time.Second})
	if err != nil {
		return err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.Close(closeCtx); err != nil {
			log.Error("Closing", "error", err)
		}
	}()
	log.Info("Sample engine started", "mode", c.Mode(), "prefix", c.Catalog().KeyPrefix, "in_memory", c.InMemory(), "interval", interval)
	return sampleengine.Run(ctx, c, sampleengine.Options{Interval: interval, MalformedEvery: malformed, Log: log})
}
