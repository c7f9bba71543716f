package messaging

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// ErrRedisRequired is returned by Connect in Live mode when Redis is not
// configured or does not answer: the standard's fail-fast.
var ErrRedisRequired = errors.New("messaging: Redis is required for live trading")

// Options tune Connect. Every field's zero value means its default.
type Options struct {
	// Catalog replaces the catalog the Config names. default: the
	// Config's catalog (LoadCatalog).
	Catalog *Catalog
	// Log receives the client's warnings. default: slog.Default().
	Log *slog.Logger
	// Clock drives the memory bus's TTLs (a backtest may pass one that
	// follows simulated time). default: the wall clock.
	Clock Clock
	// ConnectTimeout bounds reaching Redis at Connect. default: 10s.
	ConnectTimeout time.Duration
	// HTTPClient forwards events to the event logger. default: a client
	// with a 10s timeout.
	HTTPClient *http.Client
	// ForwardQueue bounds the events waiting to be forwarded to the event
	// logger; past it, Publish blocks until there is room or its context
	// ends. default: 10000.
	ForwardQueue int
}

// Client is a strategy component's connection to the standard: it
// publishes events and keeps state with the catalog's names, shapes and
// TTLs, on Redis or, in a backtest without Redis, on an in-process bus.
// The same component code runs in both. A Client is safe for concurrent
// use.
type Client struct {
	cat     Catalog
	bus     Bus
	log     *slog.Logger
	fwd     *forwarder
	skipped atomic.Int64
	closing sync.Once
}

// Connect applies the standard's mode rules. Live: Redis must be
// configured and answer, or Connect returns ErrRedisRequired. Backtest:
// Redis when it is configured and answers; otherwise the in-process memory
// bus, with a warning, and (when cfg names the event logger) every event
// published is forwarded to the event logger, so the backtest's audit
// trail is complete.
func Connect(ctx context.Context, cfg Config, o Options) (*Client, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 10 * time.Second
	}
	var cat Catalog
	if o.Catalog != nil {
		cat = *o.Catalog
	} else {
		var err error
		if cat, err = cfg.LoadCatalog(); err != nil {
			return nil, err
		}
	}
	c := &Client{cat: cat, log: o.Log}
	if cfg.Redis.Configured() {
		bus, err := dialRedis(ctx, cfg.Redis, cat, o.ConnectTimeout)
		if err == nil {
			c.bus = bus
			return c, nil
		}
		if cat.Mode == ModeLive {
			return nil, fmt.Errorf("%w: %s: %w", ErrRedisRequired, cfg.Redis, err)
		}
		o.Log.Warn("Redis unavailable, continuing without pub/sub: the backtest runs on the in-process bus",
			"redis", cfg.Redis.String(), "error", err.Error())
	} else if cat.Mode == ModeLive {
		return nil, fmt.Errorf("%w: no Redis configured (%s)", ErrRedisRequired, EnvRedisAddrs)
	}
	c.bus = NewMemoryBus(o.Clock)
	if cfg.EventLoggerURL != "" {
		c.fwd = newForwarder(cfg.EventLoggerURL, cfg.EventLoggerToken, o)
	}
	return c, nil
}

// ConnectFromEnv connects with the configuration the operator gave the pod
// (ConfigFromEnv).
func ConnectFromEnv(ctx context.Context, o Options) (*Client, error) {
	cfg, err := ConfigFromEnv(nil)
	if err != nil {
		return nil, err
	}
	return Connect(ctx, cfg, o)
}

func dialRedis(ctx context.Context, rc RedisConfig, cat Catalog, timeout time.Duration) (*RedisBus, error) {
	client, err := NewRedisClient(rc)
	if err != nil {
		return nil, err
	}
	bus := NewRedisBus(client, RedisBusOptions{KeyPrefix: cat.KeyPrefix})
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err = bus.Ping(ctx)
		if err == nil {
			return bus, nil
		}
		select {
		case <-ctx.Done():
			_ = bus.Close()
			return nil, err
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Catalog is the catalog the client follows.
func (c *Client) Catalog() Catalog { return c.cat }

// Mode is the strategy's mode.
func (c *Client) Mode() Mode { return c.cat.Mode }

// InMemory reports whether the client runs on the in-process bus.
func (c *Client) InMemory() bool { return c.bus.Kind() == "memory" }

// Bus is the bus under the client.
func (c *Client) Bus() Bus { return c.bus }

// Skipped is how many received messages the client's subscriptions
// skipped because they were not events (not a JSON object).
func (c *Client) Skipped() int64 { return c.skipped.Load() }

// Publish publishes an event on a channel of the catalog, in the
// standard's envelope: the timestamp now, the component the catalog names
// as the channel's publisher, the event type of the channel's name, and
// metadata (anything encoding/json encodes; JSON as json.RawMessage is used
// as it is).
func (c *Client) Publish(ctx context.Context, channel string, metadata any) error {
	msg, err := c.envelope(channel, metadata)
	if err != nil {
		return err
	}
	if err := c.bus.Publish(ctx, channel, msg); err != nil {
		return err
	}
	return c.forward(ctx, channel, msg)
}

// PublishState publishes an event (as Publish does) and stores the key's
// latest state with the catalog's TTL, in one round trip: the standard's
// pattern for every component. value is stamped with a timestamp when it
// is an object without one.
func (c *Client) PublishState(ctx context.Context, channel string, metadata any, key string, value any) error {
	msg, err := c.envelope(channel, metadata)
	if err != nil {
		return err
	}
	v, ttl, err := c.stateValue(key, value)
	if err != nil {
		return err
	}
	if err := c.bus.PublishState(ctx, channel, msg, key, v, ttl); err != nil {
		return err
	}
	return c.forward(ctx, channel, msg)
}

// SetState stores a key's latest state with the catalog's TTL (none for a
// persistent key). value is stamped with a timestamp when it is an object
// without one.
func (c *Client) SetState(ctx context.Context, key string, value any) error {
	v, ttl, err := c.stateValue(key, value)
	if err != nil {
		return err
	}
	return c.bus.Set(ctx, key, v, ttl)
}

// State is a key's latest value.
type State struct {
	// Value as stored.
	Value []byte
	// TTL remaining; negative for a persistent key.
	TTL time.Duration
	// Timestamp of the value, zero when it has none that can be read.
	Timestamp time.Time
}

// State returns a key's latest value; ErrKeyNotFound when it has none.
func (c *Client) State(ctx context.Context, key string) (State, error) {
	v, ttl, err := c.bus.Get(ctx, key)
	if err != nil {
		return State{}, err
	}
	ts, _, _ := DecodeKeyValue(v, len(v)+1)
	return State{Value: v, TTL: ttl, Timestamp: ts}, nil
}

// Handler receives the events of a subscription, one at a time.
type Handler func(ctx context.Context, e Event)

// Subscribe calls handler with each event published on the channels, in
// order, from a goroutine of its own, until ctx ends or the subscription
// is closed. Messages of either shape arrive decoded; a message that is not
// an event (not a JSON object) is skipped, logged and counted (Skipped).
// It returns once the subscription is confirmed: what is published after
// it returns is received.
func (c *Client) Subscribe(ctx context.Context, handler Handler, channels ...string) (Subscription, error) {
	for _, ch := range channels {
		if _, ok := c.cat.Channel(ch); !ok {
			return nil, fmt.Errorf("messaging: subscribe: channel %q is not in the catalog", ch)
		}
	}
	sub, err := c.bus.Subscribe(ctx, channels...)
	if err != nil {
		return nil, err
	}
	go func() {
		stop := context.AfterFunc(ctx, func() { _ = sub.Close() })
		defer stop()
		for d := range sub.C() {
			e, err := c.cat.DecodeEvent(d.Channel, d.Payload, DecodeOptions{})
			if err != nil {
				c.skipped.Add(1)
				c.log.Warn("Invalid message skipped", "channel", d.Channel, "error", err.Error())
				continue
			}
			handler(ctx, e)
		}
	}()
	return sub, nil
}

// Close forwards what is still queued for the event logger (until ctx
// ends) and closes the bus.
func (c *Client) Close(ctx context.Context) error {
	var err error
	c.closing.Do(func() {
		if c.fwd != nil {
			err = c.fwd.close(ctx)
		}
		err = errors.Join(err, c.bus.Close())
	})
	return err
}

func (c *Client) envelope(channel string, metadata any) ([]byte, error) {
	if _, ok := c.cat.Channel(channel); !ok {
		return nil, fmt.Errorf("messaging: publish: channel %q is not in the catalog", channel)
	}
	return Envelope(time.Now(), c.cat.Publisher(channel), EventType(channel), metadata)
}

func (c *Client) stateValue(key string, value any) ([]byte, time.Duration, error) {
	k, ok := c.cat.Key(key)
	if !ok {
		return nil, 0, fmt.Errorf("messaging: state: key %q is not in the catalog", key)
	}
	if key == KeyEventsHistory {
		return nil, 0, fmt.Errorf("messaging: state: %s is written by the event logger only", key)
	}
	v, err := marshalData(value)
	if err != nil {
		return nil, 0, fmt.Errorf("messaging: state %s: %w", key, err)
	}
	return stampValue(v, time.Now()), k.TTL.Duration, nil
}

// stampValue puts a timestamp first in a JSON object that has none, so
// that maxAge can be checked; anything else is returned as it is.
func stampValue(v []byte, now time.Time) []byte {
	if len(v) == 0 || v[0] != '{' || scanTopLevel(v).timestamp != nil {
		return v
	}
	out := make([]byte, 0, len(v)+48)
	out = append(out, `{"timestamp":"`...)
	out = now.UTC().AppendFormat(out, time.RFC3339Nano)
	out = append(out, '"')
	if rest := v[skipSpace(v, 1):]; len(rest) > 0 && rest[0] != '}' {
		out = append(out, ',')
	}
	return append(out, v[1:]...)
}

func (c *Client) forward(ctx context.Context, channel string, msg []byte) error {
	if c.fwd == nil {
		return nil
	}
	return c.fwd.enqueue(ctx, channel, msg)
}
