package messaging

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultHistoryMaxLen bounds events:history (XADD MAXLEN ~).
const DefaultHistoryMaxLen = 100_000

// RedisBus is the Bus on Redis (go-redis v9): standalone, Sentinel or
// Cluster, through a UniversalClient.
type RedisBus struct {
	client     redis.UniversalClient
	prefix     string
	historyTTL time.Duration
	maxLen     int64
}

// RedisBusOptions configure a RedisBus.
type RedisBusOptions struct {
	// KeyPrefix is prepended to every channel and key.
	KeyPrefix string
	// HistoryTTL is events:history's TTL. default: the catalog's, 24h.
	HistoryTTL time.Duration
	// HistoryMaxLen bounds events:history. default: DefaultHistoryMaxLen.
	HistoryMaxLen int64
}

// NewRedisBus wraps a client. The bus does not own the client's lifetime
// beyond Close.
func NewRedisBus(client redis.UniversalClient, opts RedisBusOptions) *RedisBus {
	if opts.HistoryTTL <= 0 {
		opts.HistoryTTL = history
	}
	if opts.HistoryMaxLen <= 0 {
		opts.HistoryMaxLen = DefaultHistoryMaxLen
	}
	return &RedisBus{client: client, prefix: opts.KeyPrefix, historyTTL: opts.HistoryTTL, maxLen: opts.HistoryMaxLen}
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

// Record writes the batch in one MULTI/EXEC, so no other client's
// commands come between its entries (a lost reply is covered by
// RecentIDs). The history entry carries the payload as it came.
func (b *RedisBus) Record(ctx context.Context, entries []LogEntry) error {
	if len(entries) == 0 {
		return nil
	}
	hist := b.name(KeyEventsHistory)
	logged := b.name(ChannelEventsLogged)
	_, err := b.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, e := range entries {
			p.XAdd(ctx, &redis.XAddArgs{
				Stream: hist, MaxLen: b.maxLen, Approx: true,
				Values: streamValues(e),
			})
			p.Publish(ctx, logged, loggedNotification(e))
		}
		p.Expire(ctx, hist, b.historyTTL)
		return nil
	})
	if err != nil {
		return fmt.Errorf("messaging: record %d events: %w", len(entries), err)
	}
	return nil
}

// streamValues are a history entry's fields: what the logger derived from
// the event, and the payload as it came.
func streamValues(e LogEntry) []any {
	v := []any{
		"id", e.ID, "channel", e.Channel, "logged_at", e.LoggedAt.UnixMilli(),
		"timestamp", FormatTimestamp(e.Event.Timestamp), "component", e.Event.Component,
		"event", e.Event.Event, "shape", string(e.Event.Shape),
	}
	if e.Event.Nonconforming != "" {
		v = append(v, "nonconforming", e.Event.Nonconforming)
	}
	return append(v, "message", []byte(e.Event.Payload))
}

func (b *RedisBus) RecentIDs(ctx context.Context, n int) (map[string]bool, error) {
	msgs, err := b.client.XRevRangeN(ctx, b.name(KeyEventsHistory), "+", "-", int64(n)).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("messaging: read history: %w", err)
	}
	ids := make(map[string]bool, len(msgs))
	for _, m := range msgs {
		if id, ok := m.Values["id"].(string); ok {
			ids[id] = true
		}
	}
	return ids, nil
}

// History pages with the stream's IDs as cursors: XREVRANGE from just
// below the cursor, one entry more than the page to know if another
// follows.
func (b *RedisBus) History(ctx context.Context, n int, before string) ([]LogEntry, string, error) {
	end := "+"
	if before != "" {
		if !streamIDPattern.MatchString(before) {
			return nil, "", ErrBadCursor
		}
		end = "(" + before
	}
	msgs, err := b.client.XRevRangeN(ctx, b.name(KeyEventsHistory), end, "-", int64(n)+1).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, "", fmt.Errorf("messaging: read history: %w", err)
	}
	next := ""
	if len(msgs) > n {
		msgs = msgs[:n]
		next = msgs[n-1].ID
	}
	out := make([]LogEntry, 0, len(msgs))
	for i := len(msgs) - 1; i >= 0; i-- {
		e, err := entryFromStream(msgs[i].Values)
		if err != nil {
			return nil, "", err
		}
		out = append(out, e)
	}
	return out, next, nil
}

// streamIDPattern is a Redis stream entry ID.
var streamIDPattern = regexp.MustCompile(`^[0-9]{1,20}-[0-9]{1,20}$`)

// entryFromStream reads what streamValues wrote.
func entryFromStream(v map[string]any) (LogEntry, error) {
	str := func(k string) string { s, _ := v[k].(string); return s }
	e := LogEntry{ID: str("id"), Channel: str("channel")}
	if n, err := strconv.ParseInt(str("logged_at"), 10, 64); err == nil {
		e.LoggedAt = time.UnixMilli(n).UTC()
	}
	ts, err := ParseTimestamp(str("timestamp"))
	if err != nil {
		return LogEntry{}, fmt.Errorf("messaging: history entry %s: timestamp %q: %w", e.ID, str("timestamp"), err)
	}
	e.Event = Event{
		Channel: e.Channel, Component: str("component"), Event: str("event"), Timestamp: ts,
		Shape: Shape(str("shape")), Nonconforming: str("nonconforming"), Payload: json.RawMessage(str("message")),
	}
	if e.Event.Shape == ShapeEnvelope {
		e.Event.Metadata = scanTopLevel(e.Event.Payload).metadata
	}
	return e, nil
}

func (b *RedisBus) WriteStats(ctx context.Context, u StatsUpdate) error {
	incr, set := u.counterFields()
	if len(incr) == 0 && len(set) == 0 {
		return nil
	}
	key := b.name(KeyChannelStats)
	_, err := b.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for f, n := range incr {
			p.HIncrBy(ctx, key, f, n)
		}
		if len(set) > 0 {
			args := make([]any, 0, 2*len(set))
			for f, n := range set {
				args = append(args, f, n)
			}
			p.HSet(ctx, key, args...)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("messaging: write channel stats: %w", err)
	}
	return nil
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
	s := &redisSubscription{ps: ps, out: make(chan Delivery, 1024)}
	// go-redis resubscribes after a reconnect; the channel stays open.
	in := ps.Channel(redis.WithChannelSize(1024), redis.WithChannelSendTimeout(time.Hour))
	go func() {
		defer close(s.out)
		for m := range in {
			s.out <- Delivery{Channel: m.Channel[len(b.prefix):], Payload: []byte(m.Payload)}
		}
	}()
	return s, nil
}

type redisSubscription struct {
	ps  *redis.PubSub
	out chan Delivery
}

func (s *redisSubscription) C() <-chan Delivery { return s.out }
func (s *redisSubscription) Close() error       { return s.ps.Close() }

var _ Bus = (*RedisBus)(nil)
