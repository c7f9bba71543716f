package sampleengine

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stratops/stratops/internal/eventlog"
	el "github.com/stratops/stratops/internal/eventlogger"
	"github.com/stratops/stratops/internal/redisprobe"
	"github.com/stratops/stratops/internal/redisserver"
	"github.com/stratops/stratops/pkg/messaging"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestChain_IsTheStandardsChainReadFromTheCatalog(t *testing.T) {
	got := Chain(messaging.Standard(messaging.ModeLive))
	want := []Component{
		{Name: "position_monitor", Publishes: []string{"position:updated"}, Keys: []string{"position:snapshot"}},
		{Name: "exposure_monitor", Publishes: []string{"exposure:calculated"}, Listens: []string{"position:updated"}, Keys: []string{"exposure:current"}},
		{Name: "risk_monitor", Publishes: []string{"risk:calculated"}, Listens: []string{"exposure:calculated"}, Keys: []string{"risk:current"}},
		{Name: "pnl_calculator", Publishes: []string{"pnl:calculated"}, Listens: []string{"risk:calculated"}, Keys: []string{"pnl:current", "pnl:hourly_series"}},
		{Name: "strategy_manager", Publishes: []string{"strategy:instructions"}, Listens: []string{"risk:calculated"}, Keys: []string{"strategy:rebalancing"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("chain\n%+v\nwant\n%+v", got, want)
	}
}

// TestRun_LiveChainWithTheEventLoggerMakesEveryChannelAndKeyHealthy runs
// the sample engine (written on pkg/messaging) and the event logger on a
// real redis-server and reads the health the operator would: all 6
// channels have their subscribers, all 9 keys are there with the policy's
// TTL, and the malformed messages are counted, not logged.
func TestRun_LiveChainWithTheEventLoggerMakesEveryChannelAndKeyHealthy(t *testing.T) {
	srv, err := redisserver.Shared()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	liveChainHealthy(t, messaging.RedisConfig{Addrs: []string{srv.Addr}})
}

// TestRun_TheChainOnARedisCluster: the same on a Cluster of three masters
// with a replica each: keys on their slots, classic pub/sub across the
// nodes, the logger's history and lease on one slot, every channel and
// key healthy as the operator reads them.
func TestRun_TheChainOnARedisCluster(t *testing.T) {
	cl, err := redisserver.StartCluster(3, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	liveChainHealthy(t, messaging.RedisConfig{Topology: "Cluster", Addrs: cl.Addrs()})
}

// liveChainHealthy runs the sample engine (written on pkg/messaging) and
// the event logger on rc and reads the health the operator would: all 6
// channels have their subscribers, all 9 keys are there with the policy's
// TTL, and the malformed messages are counted, not logged.
func liveChainHealthy(t *testing.T, rc messaging.RedisConfig) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cat := messaging.Standard(messaging.ModeLive)
	cat.KeyPrefix = fmt.Sprintf("sample-%d:", os.Getpid())
	loggerClient, err := messaging.NewRedisClient(rc)
	if err != nil {
		t.Fatal(err)
	}
	defer loggerClient.Close()
	logger := el.NewService(el.ServiceConfig{Catalog: cat, Log: quiet, StatsInterval: 100 * time.Millisecond},
		messaging.NewRedisBus(loggerClient, messaging.RedisBusOptions{KeyPrefix: cat.KeyPrefix}),
		eventlog.NewRedisStore(loggerClient, eventlog.RedisStoreOptions{KeyPrefix: cat.KeyPrefix}))
	go func() { _ = logger.Run(ctx) }()
	time.Sleep(200 * time.Millisecond) // the logger subscribes first, as in a rollout

	c, err := messaging.Connect(ctx, messaging.Config{Mode: messaging.ModeLive, KeyPrefix: cat.KeyPrefix,
		Redis: rc}, messaging.Options{Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if c.InMemory() {
		t.Fatal("a Live client with Redis runs in memory")
	}
	go func() { _ = Run(ctx, c, Options{Interval: 50 * time.Millisecond, MalformedEvery: 20, Log: quiet}) }()

	probeClient, err := messaging.NewRedisClient(rc)
	if err != nil {
		t.Fatal(err)
	}
	defer probeClient.Close()
	deadline := time.Now().Add(20 * time.Second)
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
		var invalid, logged, windowed int64
		for _, c := range h.Channels {
			if c.Name == "position:updated" {
				invalid, logged, windowed = c.Invalid, c.Messages, c.Window.LagSamples
			}
		}
		if len(bad) == 0 && invalid > 0 && logged > 0 && windowed > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not healthy after 20s: %v (position:updated invalid %d, logged %d, lag samples %d)", bad, invalid, logged, windowed)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRun_BacktestWithoutRedisForwardsEveryEventToTheEventLogger runs the
// same chain in a backtest with no Redis: the client falls back to the
// in-process bus and forwards what it publishes to the logger's HTTP API,
// so that the logger (itself on memory) has the whole chain.
func TestRun_BacktestWithoutRedisForwardsEveryEventToTheEventLogger(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cat := messaging.Standard(messaging.ModeBacktest)
	loggerBus := messaging.NewMemoryBus(nil)
	loggerStore := eventlog.NewMemoryStore(loggerBus, nil)
	logger := el.NewService(el.ServiceConfig{Catalog: cat, Log: quiet}, loggerBus, loggerStore)
	go func() { _ = logger.Run(ctx) }()
	api := httptest.NewServer(logger.Handler())
	defer api.Close()

	c, err := messaging.Connect(ctx, messaging.Config{Mode: messaging.ModeBacktest, EventLoggerURL: api.URL}, messaging.Options{Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if !c.InMemory() {
		t.Fatal("a backtest without Redis must run on the in-process bus")
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- Run(runCtx, c, Options{Interval: 20 * time.Millisecond, Log: quiet}) }()
	seen := map[string]int{}
	deadline := time.Now().Add(15 * time.Second)
	for len(seen) < 5 || seen["position:updated"] < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("the logger saw only %v", seen)
		}
		time.Sleep(50 * time.Millisecond)
		h, _, _ := loggerStore.History(ctx, 100_000, "")
		seen = map[string]int{}
		for _, e := range h {
			seen[e.Channel]++
			if e.Event.Component != cat.Publisher(e.Channel) || e.Event.Shape != messaging.ShapeEnvelope || e.Event.Nonconforming != "" {
				t.Fatalf("forwarded event %+v", e.Event)
			}
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Close forwards what is still queued.
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestRun_StopsGracefully: on the stop signal the engine takes no new
// work, finishes the chain steps in flight (their publishes outlive the
// signal), says so, and returns well within a pod's grace period; nothing
// is published after it returned.
func TestRun_StopsGracefully(t *testing.T) {
	srv, err := redisserver.Shared()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cat := messaging.Standard(messaging.ModeLive)
	cat.KeyPrefix = fmt.Sprintf("stop-%d:", os.Getpid())
	var logs syncBuffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	c, err := messaging.Connect(context.Background(), messaging.Config{Mode: messaging.ModeLive, KeyPrefix: cat.KeyPrefix,
		Redis: messaging.RedisConfig{Addrs: []string{srv.Addr}}}, messaging.Options{Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close(context.Background()) }()
	watch := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer watch.Close()
	sub := watch.PSubscribe(context.Background(), cat.KeyPrefix+"*")
	defer sub.Close()
	if _, err := sub.Receive(context.Background()); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- Run(ctx, c, Options{Interval: 20 * time.Millisecond, Log: log}) }()
	for seen := 0; seen < 20; seen++ {
		if _, err := sub.ReceiveMessage(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	start := time.Now()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the engine did not stop within 10s of the signal")
	}
	t.Logf("stopped %s after the signal", time.Since(start).Round(time.Millisecond))
	for _, want := range []string{"Stopping: no new work", "Stopped: every chain step in flight was published"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log lacks %q:\n%s", want, logs.String())
		}
	}
	// Drain what was delivered before it returned; then nothing more.
	ch := sub.Channel()
	for drained := false; !drained; {
		select {
		case <-ch:
		case <-time.After(300 * time.Millisecond):
			drained = true
		}
	}
	select {
	case m := <-ch:
		t.Fatalf("published after it stopped: %s %s", m.Channel, m.Payload)
	case <-time.After(500 * time.Millisecond):
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }
