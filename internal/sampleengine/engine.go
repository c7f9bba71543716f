// Package sampleengine plays a Strategy's chain of components, as the
// catalog describes it, on pkg/messaging: the way the README tells users to
// write theirs. Every component that publishes on a channel of the catalog
// takes part: one that subscribes to nothing (the position monitor, first
// in the standard's chain) publishes on a timer; each other one publishes
// when an event arrives on a channel it subscribes to. Each writes the keys
// the catalog says it writes, with their TTLs. Now and then it publishes a
// malformed message, which the event logger must skip and count.
package sampleengine

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratops/stratops/pkg/messaging"
)

// Options of a sample engine.
type Options struct {
	// Interval between the source components' events. default: 1s.
	Interval time.Duration
	// MalformedEvery publishes one malformed message every N ticks on the
	// first source's channel; 0 never. default: 0.
	MalformedEvery int
	// Log. default: slog.Default().
	Log *slog.Logger
	// StopTimeout bounds the wait, once stopped, for what is in flight.
	// default: 5s (well within a pod's 30s grace period).
	StopTimeout time.Duration
}

// Component is one component of the chain, as the catalog has it.
type Component struct {
	Name string
	// Publishes are the channels it publishes on.
	Publishes []string
	// Listens are the channels it subscribes to; none for a source.
	Listens []string
	// Keys are the keys it writes.
	Keys []string
}

// Chain reads the components out of a catalog: every publisher of a
// channel (the event logger's own channel aside), with what it subscribes
// to and the keys it writes, in catalog order.
func Chain(cat messaging.Catalog) []Component {
	var out []Component
	index := map[string]int{}
	get := func(name string) *Component {
		i, ok := index[name]
		if !ok {
			i = len(out)
			index[name] = i
			out = append(out, Component{Name: name})
		}
		return &out[i]
	}
	for _, ch := range cat.Channels {
		if ch.Name == messaging.ChannelEventsLogged || ch.Publisher == "" {
			continue
		}
		c := get(ch.Publisher)
		c.Publishes = append(c.Publishes, ch.Name)
	}
	for _, ch := range cat.Channels {
		for _, sub := range ch.Subscribers {
			if i, ok := index[sub]; ok {
				out[i].Listens = append(out[i].Listens, ch.Name)
			}
		}
	}
	for _, k := range cat.Keys {
		if i, ok := index[k.Writer]; ok {
			out[i].Keys = append(out[i].Keys, k.Name)
		}
	}
	return out
}

// Run plays the chain until ctx ends (SIGTERM), then stops as the README's
// contract for engines asks: it starts nothing new (no tick, no event taken
// from a subscription), lets the chain steps in flight publish, up to
// StopTimeout, logs what it finished and what it abandoned, and returns;
// the caller then closes the client, which flushes. Errors of single
// publishes (Redis down) are logged and the engine keeps going.
func Run(ctx context.Context, c *messaging.Client, o Options) error {
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = 5 * time.Second
	}
	// Publishing outlives the stop signal, for what is in flight.
	work, abandon := context.WithCancel(context.WithoutCancel(ctx))
	defer abandon()
	var (
		mu       sync.Mutex
		stopping bool
		inFlight sync.WaitGroup
		active   atomic.Int64
		dropped  int
	)
	cat := c.Catalog()
	// Keys no component writes (the config keys) are written once.
	for _, k := range cat.Keys {
		if k.Writer == "" {
			if err := c.SetState(ctx, k.Name, map[string]any{"name": "sample"}); err != nil {
				o.Log.Warn("Writing config key", "key", k.Name, "error", err)
			}
		}
	}
	act := func(comp Component, trigger string) {
		mu.Lock()
		if stopping {
			dropped++
			mu.Unlock()
			return
		}
		inFlight.Add(1)
		active.Add(1)
		mu.Unlock()
		defer func() { active.Add(-1); inFlight.Done() }()
		ctx := work
		for i, ch := range comp.Publishes {
			md := map[string]any{"trigger": trigger, "value": rand.Float64()}
			var err error
			if i < len(comp.Keys) {
				// Its own state key goes with the notification, in one round trip.
				err = c.PublishState(ctx, ch, md, comp.Keys[i], map[string]any{"component": comp.Name, "value": rand.Float64()})
			} else {
				err = c.Publish(ctx, ch, md)
			}
			if err != nil {
				o.Log.Warn("Publishing", "channel", ch, "error", err)
				return
			}
		}
		for _, k := range comp.Keys[min(len(comp.Publishes), len(comp.Keys)):] {
			if err := c.SetState(ctx, k, map[string]any{"component": comp.Name, "value": rand.Float64()}); err != nil {
				o.Log.Warn("Writing key", "key", k, "error", err)
			}
		}
	}
	var sources []Component
	var subs []messaging.Subscription
	for _, comp := range Chain(cat) {
		if len(comp.Listens) == 0 {
			sources = append(sources, comp)
			continue
		}
		// Each component has its own subscription, as a separate process
		// would: PUBSUB NUMSUB counts each.
		sub, err := c.Subscribe(work, func(_ context.Context, e messaging.Event) { act(comp, e.Channel) }, comp.Listens...)
		if err != nil {
			return fmt.Errorf("sampleengine: %s subscribing to %v: %w", comp.Name, comp.Listens, err)
		}
		subs = append(subs, sub)
	}
	if len(sources) == 0 {
		return fmt.Errorf("sampleengine: no component of the catalog publishes without subscribing: nothing starts the chain")
	}
	t := time.NewTicker(o.Interval)
	defer t.Stop()
	for n := 1; ; n++ {
		for _, comp := range sources {
			act(comp, "TICK")
		}
		if o.MalformedEvery > 0 && n%o.MalformedEvery == 0 && len(sources[0].Publishes) > 0 {
			if err := c.Bus().Publish(ctx, sources[0].Publishes[0], []byte(`{"timestamp": "not json`)); err != nil {
				o.Log.Warn("Publishing a malformed message", "error", err)
			}
		}
		select {
		case <-ctx.Done():
			return stop(o, &mu, &stopping, &inFlight, &active, &dropped, subs, abandon)
		case <-t.C:
		}
	}
}

// stop is the engine's side of a graceful stop: nothing new, what is in
// flight finished (or abandoned after StopTimeout), and said.
func stop(o Options, mu *sync.Mutex, stopping *bool, inFlight *sync.WaitGroup, active *atomic.Int64, dropped *int,
	subs []messaging.Subscription, abandon context.CancelFunc) error {
	mu.Lock()
	*stopping = true
	mu.Unlock()
	o.Log.Info("Stopping: no new work; finishing the chain steps in flight", "in_flight", active.Load())
	for _, s := range subs {
		_ = s.Close()
	}
	done := make(chan struct{})
	go func() { inFlight.Wait(); close(done) }()
	select {
	case <-done:
		mu.Lock()
		o.Log.Info("Stopped: every chain step in flight was published", "not_taken", *dropped)
		mu.Unlock()
	case <-time.After(o.StopTimeout):
		abandon()
		o.Log.Warn("Stopped with chain steps still in flight: abandoned", "abandoned", active.Load(), "after", o.StopTimeout)
	}
	return nil
}
