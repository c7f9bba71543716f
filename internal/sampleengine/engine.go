// Package sampleengine plays the standard's chain of components against a
// bus, as a stand-in strategy engine for demos and tests: the position
// monitor publishes on a timer; the exposure monitor, risk monitor, P&L
// calculator and strategy manager each subscribe to their upstream channel
// and publish downstream when triggered, writing their keys with the
// catalog's TTLs. Now and then it publishes a malformed message, which the
// event logger must skip and count.
package sampleengine

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	el "github.com/stratops/stratops/internal/eventlogger"
)

// Options of a sample engine.
type Options struct {
	// Interval between position updates. default: 1s.
	Interval time.Duration
	// MalformedEvery publishes one malformed message every N position
	// updates; 0 never. default: 0.
	MalformedEvery int
	// Log. default: slog.Default().
	Log *slog.Logger
}

type component struct {
	name     string
	listens  string // upstream channel, "" for the position monitor
	channel  string
	key      string
	extraKey string
}

var chain = []component{
	{name: el.ComponentPositionMonitor, channel: "position:updated", key: "position:snapshot"},
	{name: el.ComponentExposureMonitor, listens: "position:updated", channel: "exposure:calculated", key: "exposure:current"},
	{name: el.ComponentRiskMonitor, listens: "exposure:calculated", channel: "risk:calculated", key: "risk:current"},
	{name: el.ComponentPnLCalculator, listens: "risk:calculated", channel: "pnl:calculated", key: "pnl:current", extraKey: "pnl:hourly_series"},
	{name: el.ComponentStrategyManager, listens: "risk:calculated", channel: "strategy:instructions", key: "strategy:rebalancing"},
}

// Run plays the chain until ctx ends. Errors of single publishes (Redis
// down) are logged and the engine keeps going.
func Run(ctx context.Context, bus el.Bus, cat el.Catalog, o Options) error {
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	ttl := func(key string) time.Duration {
		k, _ := cat.Key(key)
		return k.TTL.Duration
	}
	now := func() string { return time.Now().UTC().Format(time.RFC3339Nano) }
	for _, k := range []string{"config:strategy", "config:initial_state"} {
		if _, ok := cat.Key(k); ok {
			if err := bus.Set(ctx, k, fmt.Appendf(nil, `{"timestamp":%q,"name":"sample"}`, now()), ttl(k)); err != nil {
				o.Log.Warn("Writing config key", "key", k, "error", err)
			}
		}
	}
	publish := func(c component, trigger string) {
		msg := el.Message{Timestamp: time.Now().UTC(), Component: c.name, Event: eventOf(c.channel),
			Metadata: map[string]any{"trigger": trigger, "value": rand.Float64()}}.Encode()
		value := fmt.Appendf(nil, `{"timestamp":%q,"component":%q,"value":%f}`, now(), c.name, rand.Float64())
		if err := bus.PublishState(ctx, c.channel, msg, c.key, value, ttl(c.key)); err != nil {
			o.Log.Warn("Publishing", "channel", c.channel, "error", err)
			return
		}
		if c.extraKey != "" {
			if err := bus.Set(ctx, c.extraKey, value, ttl(c.extraKey)); err != nil {
				o.Log.Warn("Writing key", "key", c.extraKey, "error", err)
			}
		}
	}
	// Each downstream component has its own subscription, as a separate
	// process would: PUBSUB NUMSUB counts each.
	for _, c := range chain[1:] {
		sub, err := bus.Subscribe(ctx, c.listens)
		if err != nil {
			return fmt.Errorf("sampleengine: %s subscribing to %s: %w", c.name, c.listens, err)
		}
		go func() {
			defer sub.Close()
			go func() { <-ctx.Done(); _ = sub.Close() }()
			for d := range sub.C() {
				if _, err := el.DecodeMessage(d.Payload, 0); err != nil {
					continue // the standard: skip what cannot be decoded
				}
				publish(c, d.Channel)
			}
		}()
	}
	t := time.NewTicker(o.Interval)
	defer t.Stop()
	for n := 1; ; n++ {
		publish(chain[0], "TICK")
		if o.MalformedEvery > 0 && n%o.MalformedEvery == 0 {
			if err := bus.Publish(ctx, "position:updated", []byte(`{"timestamp": "not json`)); err != nil {
				o.Log.Warn("Publishing a malformed message", "error", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func eventOf(channel string) string {
	for i := range channel {
		if channel[i] == ':' {
			return channel[i+1:]
		}
	}
	return channel
}
