package messaging

import (
	"context"
	"errors"
	"strconv"
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
	clock      Clock
	historyTTL time.Duration
	maxLen     int

	mu      sync.Mutex
	keys    map[string]memValue
	history []LogEntry
	// dropped counts the entries trimmed from the front of history, so
	// that a history cursor names the same entry after a trim.
	dropped int
	histExp time.Time
	subs    map[string][]*memSubscription
	closed  bool
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
	return &MemoryBus{
		clock: clock, historyTTL: history, maxLen: memoryHistoryMaxLen,
		keys: map[string]memValue{}, subs: map[string][]*memSubscription{},
	}
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
	if key == KeyEventsHistory {
		if len(b.history) == 0 || (!b.histExp.IsZero() && !now.Before(b.histExp)) {
			return nil, 0, ErrKeyNotFound
		}
		return nil, b.histExp.Sub(now), nil
	}
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

func (b *MemoryBus) Record(ctx context.Context, entries []LogEntry) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return errClosed
	}
	now := b.clock.Now()
	if !b.histExp.IsZero() && !now.Before(b.histExp) {
		b.dropped += len(b.history)
		b.history = nil
	}
	b.history = append(b.history, entries...)
	if over := len(b.history) - b.maxLen; over > 0 {
		b.dropped += over
		b.history = append([]LogEntry(nil), b.history[over:]...)
	}
	b.histExp = now.Add(b.historyTTL)
	b.mu.Unlock()
	return b.Notify(ctx, entries)
}

// Notify publishes the events:logged notification of entries already in
// the history.
func (b *MemoryBus) Notify(ctx context.Context, entries []LogEntry) error {
	for i, e := range entries {
		if err := b.Publish(ctx, ChannelEventsLogged, loggedNotification(e)); err != nil {
			return &NotifyError{Events: len(entries) - i, Err: err}
		}
	}
	return nil
}

// memoryHistoryMaxLen bounds the in-memory history of a backtest.
const memoryHistoryMaxLen = 100_000

func (b *MemoryBus) RecentIDs(_ context.Context, n int) (map[string]bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ids := map[string]bool{}
	for i := len(b.history) - 1; i >= 0 && len(ids) < n; i-- {
		ids[b.history[i].ID] = true
	}
	return ids, nil
}

// History pages with positions as cursors: the number of entries logged
// before the page, counting those trimmed since.
func (b *MemoryBus) History(_ context.Context, n int, before string) ([]LogEntry, string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.histExp.IsZero() && !b.clock.Now().Before(b.histExp) {
		return nil, "", nil
	}
	end := len(b.history)
	if before != "" {
		c, err := strconv.Atoi(before)
		if err != nil || c < 0 || c-b.dropped > len(b.history) {
			return nil, "", ErrBadCursor
		}
		end = max(c-b.dropped, 0)
	}
	start := max(end-n, 0)
	next := ""
	if start > 0 {
		next = strconv.Itoa(b.dropped + start)
	}
	return append([]LogEntry(nil), b.history[start:end]...), next, nil
}

// WriteStats does nothing: the stats hash is for the operator, which reads
// it from Redis and never from a process's memory; a logger on memory
// reports the same counters in its metrics.
func (b *MemoryBus) WriteStats(context.Context, StatsUpdate) error { return nil }

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
