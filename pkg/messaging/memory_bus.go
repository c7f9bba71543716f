package messaging

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Clock tells the time. A backtest gives the MemoryBus a clock that follows
// simulated time, so that keys expire by the market's clock, not the wall's.
type Clock interface{ Now() time.Time }

// WallClock is the real time.
type WallClock struct{}

// Now is time.Now.
func (WallClock) Now() time.Time { return time.Now() }

// MemoryBus is the Bus without Redis: in-process pub/sub and keys with TTLs
// on an injectable clock. It is what a backtest runs on when it has no
// Redis.
type MemoryBus struct {
	clock Clock

	mu     sync.Mutex
	keys   map[string]memValue
	subs   map[string][]*memSubscription
	closed bool
}

type memValue struct {
	value   []byte
	expires time.Time // zero: persistent
}

// NewMemoryBus makes a MemoryBus; a nil clock is the wall clock.
func NewMemoryBus(clock Clock) *MemoryBus {
	if clock == nil {
		clock = WallClock{}
	}
	return &MemoryBus{clock: clock, keys: map[string]memValue{}, subs: map[string][]*memSubscription{}}
}

var errClosed = errors.New("messaging: bus closed")

func (b *MemoryBus) Kind() string { return "memory" }

// Publish delivers to every subscriber of the channel. A slow subscriber
// makes the publisher wait (up to ctx): in memory, nothing is dropped.
func (b *MemoryBus) Publish(ctx context.Context, channel string, payload []byte) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return errClosed
	}
	subs := append([]*memSubscription(nil), b.subs[channel]...)
	b.mu.Unlock()
	p := append([]byte(nil), payload...)
	for _, s := range subs {
		if err := s.deliver(ctx, Delivery{Channel: channel, Payload: p}); err != nil {
			return err
		}
	}
	return nil
}

func (b *MemoryBus) PublishState(ctx context.Context, channel string, msg []byte, key string, value []byte, ttl time.Duration) error {
	if err := b.Set(ctx, key, value, ttl); err != nil {
		return err
	}
	return b.Publish(ctx, channel, msg)
}

func (b *MemoryBus) Subscribe(_ context.Context, channels ...string) (Subscription, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errClosed
	}
	s := &memSubscription{bus: b, channels: channels, out: make(chan Delivery, 1024), done: make(chan struct{})}
	for _, c := range channels {
		b.subs[c] = append(b.subs[c], s)
	}
	return s, nil
}

func (b *MemoryBus) Set(_ context.Context, key string, value []byte, ttl time.Duration) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	v := memValue{value: append([]byte(nil), value...)}
	if ttl > 0 {
		v.expires = b.clock.Now().Add(ttl)
	}
	b.keys[key] = v
	return nil
}

func (b *MemoryBus) Get(_ context.Context, key string) ([]byte, time.Duration, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.clock.Now()
	v, ok := b.keys[key]
	if !ok {
		return nil, 0, ErrKeyNotFound
	}
	if v.expires.IsZero() {
		return v.value, -1, nil
	}
	if !now.Before(v.expires) {
		delete(b.keys, key)
		return nil, 0, ErrKeyNotFound
	}
	return v.value, v.expires.Sub(now), nil
}

func (b *MemoryBus) Ping(context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errClosed
	}
	return nil
}

func (b *MemoryBus) Close() error {
	b.mu.Lock()
	subs := b.subs
	b.subs, b.closed = map[string][]*memSubscription{}, true
	b.mu.Unlock()
	seen := map[*memSubscription]bool{}
	for _, list := range subs {
		for _, s := range list {
			if !seen[s] {
				seen[s] = true
				s.shutdown()
			}
		}
	}
	return nil
}

type memSubscription struct {
	bus      *MemoryBus
	channels []string
	out      chan Delivery
	done     chan struct{}
	once     sync.Once
	mu       sync.RWMutex // held for reading while delivering, for writing while closing
}

func (s *memSubscription) deliver(ctx context.Context, d Delivery) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	select {
	case <-s.done:
		return nil
	default:
	}
	select {
	case s.out <- d:
		return nil
	case <-s.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *memSubscription) C() <-chan Delivery { return s.out }

func (s *memSubscription) Close() error {
	s.bus.mu.Lock()
	for _, c := range s.channels {
		list := s.bus.subs[c]
		for i, x := range list {
			if x == s {
				s.bus.subs[c] = append(list[:i:i], list[i+1:]...)
				break
			}
		}
	}
	s.bus.mu.Unlock()
	s.shutdown()
	return nil
}

func (s *memSubscription) shutdown() {
	s.once.Do(func() {
		close(s.done)
		s.mu.Lock()
		close(s.out)
		s.mu.Unlock()
	})
}

var _ Bus = (*MemoryBus)(nil)
