package eventlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stratops/stratops/pkg/messaging"
)

// RedisStore is the event log in Redis, under a Strategy's key prefix:
// events:history, events:logged, the stats hash and the lease.
type RedisStore struct {
	client     redis.UniversalClient
	prefix     string
	historyTTL time.Duration
	retention  time.Duration
	now        func() time.Time
}

// RedisStoreOptions configure a RedisStore.
type RedisStoreOptions struct {
	// KeyPrefix is prepended to every channel and key.
	KeyPrefix string
	// HistoryTTL is events:history's TTL. default: the standard's, 24h
	// (messaging.HistoryTTL).
	HistoryTTL time.Duration
	// HistoryRetention is how far back events:history keeps entries: each
	// XADD trims (MINID ~) those older. default: HistoryTTL.
	HistoryRetention time.Duration
}

// NewRedisStore keeps the event log on a client it does not own.
func NewRedisStore(client redis.UniversalClient, opts RedisStoreOptions) *RedisStore {
	if opts.HistoryTTL <= 0 {
		opts.HistoryTTL = messaging.HistoryTTL
	}
	if opts.HistoryRetention <= 0 {
		opts.HistoryRetention = opts.HistoryTTL
	}
	return &RedisStore{client: client, prefix: opts.KeyPrefix, historyTTL: opts.HistoryTTL, retention: opts.HistoryRetention, now: time.Now}
}

func (b *RedisStore) name(n string) string { return b.prefix + n }

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
func (b *RedisStore) Record(ctx context.Context, entries []LogEntry) error {
	if len(entries) == 0 {
		return nil
	}
	hist := b.name(messaging.KeyEventsHistory)
	minID := strconv.FormatInt(b.now().Add(-b.retention).UnixMilli(), 10)
	cmds, err := b.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, e := range entries {
			p.XAdd(ctx, &redis.XAddArgs{Stream: hist, MinID: minID, Approx: true, Values: streamValues(e)})
		}
		p.Expire(ctx, hist, b.historyTTL)
		return nil
	})
	if err != nil {
		return fmt.Errorf("eventlog: record %d events: %w", len(entries), failedCommand(cmds, err, b.prefix))
	}
	return b.Notify(ctx, entries)
}

// Notify publishes the events:logged notification of entries already in
// the history.
func (b *RedisStore) Notify(ctx context.Context, entries []LogEntry) error {
	logged := b.name(messaging.ChannelEventsLogged)
	cmds, err := b.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, e := range entries {
			p.Publish(ctx, logged, notification(e))
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
	v, _ := appendStreamValues(make([]any, 0, 18), nil, e)
	return v
}

// appendStreamValues appends streamValues to args, writing the timestamp
// into text, which it returns grown.
func appendStreamValues(args []any, text []byte, e LogEntry) ([]any, []byte) {
	start := len(text)
	text = e.Event.Timestamp.UTC().AppendFormat(text, time.RFC3339Nano)
	args = append(args, "id", e.ID, "channel", e.Channel, "logged_at", e.LoggedAt.UnixMilli(),
		"timestamp", text[start:len(text):len(text)], "component", e.Event.Component,
		"event", e.Event.Event, "shape", string(e.Event.Shape))
	if e.Event.Nonconforming != "" {
		args = append(args, "nonconforming", e.Event.Nonconforming)
	}
	return append(args, "message", []byte(e.Event.Payload)), text
}

func (b *RedisStore) RecentIDs(ctx context.Context, n int) (map[string]bool, error) {
	msgs, err := b.client.XRevRangeN(ctx, b.name(messaging.KeyEventsHistory), "+", "-", int64(n)).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("eventlog: read history: %w", err)
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
func (b *RedisStore) History(ctx context.Context, n int, before string) ([]LogEntry, string, error) {
	end := "+"
	if before != "" {
		if !streamIDPattern.MatchString(before) {
			return nil, "", ErrBadCursor
		}
		end = "(" + before
	}
	msgs, err := b.client.XRevRangeN(ctx, b.name(messaging.KeyEventsHistory), end, "-", int64(n)+1).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, "", fmt.Errorf("eventlog: read history: %w", err)
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
	ts, err := messaging.ParseTimestamp(str("timestamp"))
	if err != nil {
		return LogEntry{}, fmt.Errorf("eventlog: history entry %s: timestamp %q: %w", e.ID, str("timestamp"), err)
	}
	e.Event = messaging.Event{
		Channel: e.Channel, Component: str("component"), Event: str("event"), Timestamp: ts,
		Shape: messaging.Shape(str("shape")), Nonconforming: str("nonconforming"), Payload: json.RawMessage(str("message")),
	}
	return e, nil
}

func (b *RedisStore) WriteStats(ctx context.Context, u StatsUpdate) error {
	incr, set := u.counterFields()
	if len(incr) == 0 && len(set) == 0 {
		return nil
	}
	key := b.name(messaging.KeyChannelStats)
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
		return fmt.Errorf("eventlog: write channel stats: %w", failedCommand(cmds, err, b.prefix))
	}
	return nil
}

// LastSubscribed is when a logger on this prefix was last known
// subscribed (the stats hash's heartbeat); zero when none ever was.
func (b *RedisStore) LastSubscribed(ctx context.Context) (time.Time, error) {
	v, err := b.client.HGet(ctx, b.name(messaging.KeyChannelStats), StatsSubscribedField).Int64()
	if errors.Is(err, redis.Nil) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	return time.UnixMilli(v).UTC(), nil
}
