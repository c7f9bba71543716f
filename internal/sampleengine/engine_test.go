package sampleengine

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	el "github.com/stratops/stratops/internal/eventlogger"
	"github.com/stratops/stratops/internal/redisprobe"
	"github.com/stratops/stratops/internal/redistest"
)

// TestRun_ChainWithTheEventLoggerMakesEveryChannelAndKeyHealthy runs the
// sample engine and the event logger on a real redis-server and reads the
// health the operator would: all 6 channels have their subscribers, all 9
// keys are there with the policy's TTL, and the malformed messages are
// counted, not logged.
func TestRun_ChainWithTheEventLoggerMakesEveryChannelAndKeyHealthy(t *testing.T) {
	srv, err := redistest.Shared()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	cat := el.Standard(el.ModeLive)
	cat.KeyPrefix = fmt.Sprintf("sample-%d:", os.Getpid())
	newBus := func() *el.RedisBus {
		return el.NewRedisBus(redis.NewClient(&redis.Options{Addr: srv.Addr}), el.RedisBusOptions{KeyPrefix: cat.KeyPrefix})
	}
	logger := el.NewService(el.ServiceConfig{Catalog: cat, Log: quiet, StatsInterval: 100 * time.Millisecond}, newBus())
	go func() { _ = logger.Run(ctx) }()
	time.Sleep(200 * time.Millisecond) // the logger subscribes first, as in a rollout
	go func() {
		_ = Run(ctx, newBus(), cat, Options{Interval: 50 * time.Millisecond, MalformedEvery: 5, Log: quiet})
	}()

	probeClient := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer probeClient.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		h, err := redisprobe.ReadHealth(ctx, probeClient, cat, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		var bad []string
		for _, c := range h.Channels {
			if !c.Healthy {
				bad = append(bad, fmt.Sprintf("channel %s: %s (%d subscribers)", c.Name, c.Reason, c.Subscribers))
			}
		}
		for _, k := range h.Keys {
			if !k.Healthy {
				bad = append(bad, "key "+k.Name+": "+k.Reason)
			}
		}
		var invalid, logged int64
		for _, c := range h.Channels {
			if c.Name == "position:updated" {
				invalid, logged = c.Invalid, c.Messages
			}
		}
		if len(bad) == 0 && invalid > 0 && logged > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not healthy after 15s: %v (position:updated invalid %d, logged %d)", bad, invalid, logged)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
