package messaging

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisBus is the Bus on Redis (go-redis v9): standalone, Sentinel or
// Cluster, through a UniversalClient.
type RedisBus struct {
	client redis.UniversalClient
	prefix string
}

// RedisBusOptions configure a RedisBus.
type RedisBusOptions struct {
	// KeyPrefix is prepended to every channel and key.
	KeyPrefix string
}

// NewRedisBus wraps a client. The bus does not own the client's lifetime
// beyond Close.
func NewRedisBus(client redis.UniversalClient, opts RedisBusOptions) *RedisBus {
	return &RedisBus{client: client, prefix: opts.KeyPrefix}
}

func (b *RedisBus) Kind() string { return "redis" }

func (b *RedisBus) name(n string) string { return b.prefix + n }

func (b *RedisBus) Publish(ctx context.Context, channel string, payload []byte) error {
	if err := b.client.Publish(ctx, b.name(channel), payload).Err(); err != nil {
		return fmt.Errorf("messaging: publish %s: %w", channel, err)
	}
	return nil
}

func (b *RedisBus) PublishState(ctx context.Context, channel string, msg []byte, key string, value []byte, ttl time.Duration) error {
	_, err := b.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Publish(ctx, b.name(channel), msg)
		p.Set(ctx, b.name(key), value, ttl)
		return nil
	})
	if err != nil {
		return fmt.Errorf("messaging: publish %s and set %s: %w", channel, key, err)
	}
	return nil
}

func (b *RedisBus) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := b.client.Set(ctx, b.name(key), value, ttl).Err(); err != nil {
		return fmt.Errorf("messaging: set %s: %w", key, err)
	}
	return nil
}

func (b *RedisBus) Get(ctx context.Context, key string) ([]byte, time.Duration, error) {
	var get *redis.StringCmd
	var ttl *redis.DurationCmd
	_, err := b.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		get = p.Get(ctx, b.name(key))
		ttl = p.PTTL(ctx, b.name(key))
		return nil
	})
	if errors.Is(err, redis.Nil) || errors.Is(get.Err(), redis.Nil) {
		return nil, 0, ErrKeyNotFound
	}
	if err != nil {
		return nil, 0, fmt.Errorf("messaging: get %s: %w", key, err)
	}
	v, _ := get.Bytes()
	d := ttl.Val()
	if d < 0 {
		d = -1
	}
	return v, d, nil
}

func (b *RedisBus) Ping(ctx context.Context) error {
	if err := b.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("messaging: ping: %w", err)
	}
	return nil
}

func (b *RedisBus) Close() error { return b.client.Close() }

// Subscribe subscribes and waits for Redis to confirm every channel.
func (b *RedisBus) Subscribe(ctx context.Context, channels ...string) (Subscription, error) {
	names := make([]string, len(channels))
	for i, c := range channels {
		names[i] = b.name(c)
	}
	ps := b.client.Subscribe(ctx, names...)
	for range names {
		msg, err := ps.Receive(ctx)
		if err != nil {
			_ = ps.Close()
			return nil, fmt.Errorf("messaging: subscribe: %w", err)
		}
		if _, ok := msg.(*redis.Subscription); !ok {
			_ = ps.Close()
			return nil, fmt.Errorf("messaging: subscribe: unexpected reply %T", msg)
		}
	}
	s := &redisSubscription{ps: ps, out: make(chan Delivery, 1024), gaps: make(chan Gap, 64), done: make(chan struct{}), channels: channels, prefix: b.prefix}
	go s.loop()
	return s, nil
}

// Gap is a time the subscription was down: messages published on its
// channels between Start and End may never have reached it.
type Gap struct {
	Start, End time.Time
	Channels   []string
}

// GapReporter is a Subscription that says when it was down. Pub/sub is
// at-most-once: a reconnect resubscribes, and what was published in
// between is gone; this is how a subscriber knows.
type GapReporter interface {
	Gaps() <-chan Gap
}

type redisSubscription struct {
	ps       *redis.PubSub
	out      chan Delivery
	gaps     chan Gap
	channels []string
	prefix   string
	closed   atomic.Bool
	done     chan struct{}
	once     sync.Once
}

func (s *redisSubscription) C() <-chan Delivery { return s.out }
func (s *redisSubscription) Gaps() <-chan Gap   { return s.gaps }
func (s *redisSubscription) Close() error {
	s.closed.Store(true)
	s.once.Do(func() { close(s.done) })
	return s.ps.Close()
}
func (s *redisSubscription) subscribedAll(n int) bool { return n >= len(s.channels) }

// subscriptionPing is how long a quiet subscription waits before it pings:
// a dead connection is found within about this, and a gap's start is
// known to about this.
const subscriptionPing = time.Second

// loop receives until the subscription is closed. go-redis reconnects and
// resubscribes after an error on the next receive; the time from the last
// thing received before the error to every channel confirmed again is a
// gap, sent on Gaps (never blocking: a reader that does not want them
// loses nothing else).
func (s *redisSubscription) loop() {
	defer close(s.out)
	defer close(s.gaps)
	ctx := context.Background()
	last := time.Now()
	var gapStart time.Time
	confirmed := 0
	retry := retryPolicy(50*time.Millisecond, time.Second)
	for !s.closed.Load() {
		msg, err := s.ps.ReceiveTimeout(ctx, subscriptionPing)
		if err != nil {
			if s.closed.Load() || errors.Is(err, redis.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && gapStart.IsZero() {
				// Quiet: is the connection still there?
				if perr := s.ps.Ping(ctx); perr == nil {
					continue
				}
			}
			if gapStart.IsZero() {
				gapStart, confirmed = last, 0
			}
			time.Sleep(retry.NextBackOff())
			continue
		}
		last = time.Now()
		switch m := msg.(type) {
		case *redis.Message:
			select {
			case s.out <- Delivery{Channel: strings.TrimPrefix(m.Channel, s.prefix), Payload: []byte(m.Payload)}:
			case <-s.done:
				return
			}
		case *redis.Subscription:
			if gapStart.IsZero() || m.Kind != "subscribe" {
				continue
			}
			if confirmed++; s.subscribedAll(confirmed) {
				g := Gap{Start: gapStart, End: last, Channels: append([]string(nil), s.channels...)}
				gapStart = time.Time{}
				retry.Reset()
				select {
				case s.gaps <- g:
				default:
				}
			}
		}
	}
}

var _ Bus = (*RedisBus)(nil)
