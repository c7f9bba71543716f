package messaging

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisBus is the Bus on Redis (go-redis v9): standalone, Sentinel or
// Cluster, through a UniversalClient.
type RedisBus struct {
	client     redis.UniversalClient
	prefix     string
	historyTTL time.Duration
	retention  time.Duration
	now        func() time.Time
}

// RedisBusOptions configure a RedisBus.
type RedisBusOptions struct {
	// KeyPrefix is prepended to every channel and key.
	KeyPrefix string
	// HistoryTTL is events:history's TTL. default: the catalog's, 24h.
	HistoryTTL time.Duration
	// HistoryRetention is how far back events:history keeps entries: each
	// XADD trims (MINID ~) those older. default: HistoryTTL.
	HistoryRetention time.Duration
}

// NewRedisBus wraps a client. The bus does not own the client's lifetime
// beyond Close.
func NewRedisBus(client redis.UniversalClient, opts RedisBusOptions) *RedisBus {
	if opts.HistoryTTL <= 0 {
		opts.HistoryTTL = history
	}
	if opts.HistoryRetention <= 0 {
		opts.HistoryRetention = opts.HistoryTTL
	}
	return &RedisBus{client: client, prefix: opts.KeyPrefix, historyTTL: opts.HistoryTTL, retention: opts.HistoryRetention, now: time.Now}
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

// Record writes the batch's history first, then its notifications. The
// history entries and the history's TTL go in one MULTI/EXEC on the one
// key events:history (so it holds on a Cluster too): Redis runs all of
// them or, when it refuses one while queueing (NOPERM, OOM), none; a
// command that fails at EXEC time (WRONGTYPE) fails alone, and every XADD
// of a batch fails alike. Only once the history is written are the
// events:logged notifications published, in one pipeline that is never
// retried: a failure there is a *NotifyError, the history stands, and a
// retry of the batch would send notifications twice. Entries older than
// the retention are trimmed as the stream grows (XADD MINID ~), so the
// history keeps the standard's 24 hours whatever the rate.
func (b *RedisBus) Record(ctx context.Context, entries []LogEntry) error {
	if len(entries) == 0 {
		return nil
	}
	hist := b.name(KeyEventsHistory)
	minID := strconv.FormatInt(b.now().Add(-b.retention).UnixMilli(), 10)
	cmds, err := b.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, e := range entries {
			p.XAdd(ctx, &redis.XAddArgs{Stream: hist, MinID: minID, Approx: true, Values: streamValues(e)})
		}
		p.Expire(ctx, hist, b.historyTTL)
		return nil
	})
	if err != nil {
		return fmt.Errorf("messaging: record %d events: %w", len(entries), failedCommand(cmds, err, b.prefix))
	}
	return b.Notify(ctx, entries)
}

// Notify publishes the events:logged notification of entries already in
// the history.
func (b *RedisBus) Notify(ctx context.Context, entries []LogEntry) error {
	logged := b.name(ChannelEventsLogged)
	cmds, err := b.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, e := range entries {
			p.Publish(ctx, logged, loggedNotification(e))
		}
		return nil
	})
	if err != nil {
		return &NotifyError{Events: len(entries), Err: failedCommand(cmds, err, b.prefix)}
	}
	return nil
}

// failedCommand names the command of a pipeline that failed and its key
// (without the prefix), so that an error says what was refused: "XADD
// events:history: NOPERM ...". A transport error, which no one command
// carries, is returned as it is.
func failedCommand(cmds []redis.Cmder, err error, prefix string) error {
	for _, c := range cmds {
		cerr := c.Err()
		if cerr == nil || errors.Is(cerr, redis.Nil) || strings.HasPrefix(cerr.Error(), "EXECABORT") {
			// EXECABORT: the transaction's other commands carry it; the
			// one Redis refused while queueing carries the reason.
			continue
		}
		if IsTransient(cerr) {
			return err
		}
		name := strings.ToUpper(c.Name())
		if args := c.Args(); len(args) > 1 {
			if k, ok := args[1].(string); ok {
				name += " " + strings.TrimPrefix(k, prefix)
			}
		}
		return &CommandError{Command: name, Err: cerr}
	}
	return err
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
	cmds, err := b.client.Pipelined(ctx, func(p redis.Pipeliner) error {
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
		// The stats live as long as the history they count: a Strategy
		// deleted leaves nothing behind for good.
		p.Expire(ctx, key, b.historyTTL)
		return nil
	})
	if err != nil {
		return fmt.Errorf("messaging: write channel stats: %w", failedCommand(cmds, err, b.prefix))
	}
	return nil
}

// LastSubscribed is when a logger on this prefix was last known
// subscribed (the stats hash's heartbeat); zero when none ever was.
func (b *RedisBus) LastSubscribed(ctx context.Context) (time.Time, error) {
	v, err := b.client.HGet(ctx, b.name(KeyChannelStats), StatsSubscribedField).Int64()
	if errors.Is(err, redis.Nil) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	return time.UnixMilli(v).UTC(), nil
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
