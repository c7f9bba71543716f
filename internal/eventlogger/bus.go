package eventlogger

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"
)

// ErrKeyNotFound is returned by Get for a key that does not exist (or
// expired).
var ErrKeyNotFound = errors.New("eventlogger: key not found")

// Bus is where a strategy's messages travel and its state is kept: Redis in
// live (and in a backtest that has it), memory otherwise. Names given to a
// Bus are catalog names; the bus adds the key prefix, so that nothing it
// does leaves the strategy's prefix.
type Bus interface {
	// Kind is "redis" or "memory".
	Kind() string
	// Publish sends payload on a channel.
	Publish(ctx context.Context, channel string, payload []byte) error
	// PublishState publishes a notification and stores the matching key
	// with its TTL (0: persistent), in one round trip: the standard's
	// pattern for every component.
	PublishState(ctx context.Context, channel string, msg []byte, key string, value []byte, ttl time.Duration) error
	// Subscribe listens to channels. It returns once the subscription is
	// confirmed, so a publish made after it returns is received.
	Subscribe(ctx context.Context, channels ...string) (Subscription, error)
	// Set stores a key with its TTL (0: persistent).
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// Get returns a key's value and remaining TTL (negative: no expiry).
	Get(ctx context.Context, key string) ([]byte, time.Duration, error)
	// Record writes logged events in order: a notification on
	// events:logged and an entry in the events:history stream for each,
	// and the history's TTL, in one round trip for the whole batch.
	Record(ctx context.Context, entries []LogEntry) error
	// RecentIDs returns the IDs of the newest n history entries, so that a
	// batch whose fate is unknown after a failure is not written twice.
	RecentIDs(ctx context.Context, n int) (map[string]bool, error)
	// History returns up to n history entries, oldest first.
	History(ctx context.Context, n int) ([]LogEntry, error)
	// AddStats adds counters to the per-channel stats hash.
	AddStats(ctx context.Context, stats map[string]ChannelStats) error
	// Ping checks the bus can be used.
	Ping(ctx context.Context) error
	// Close releases the bus.
	Close() error
}

// Subscription delivers messages of the channels it listens to.
type Subscription interface {
	// C delivers messages; it is closed when the subscription is.
	C() <-chan Delivery
	Close() error
}

// Delivery is one message received on a channel (catalog name).
type Delivery struct {
	Channel string
	Payload []byte
}

// LogEntry is one event the logger accepted.
type LogEntry struct {
	// ID is unique per logger process; it makes retries idempotent.
	ID string `json:"id"`
	// Channel the event came from, or "http" for one posted to /events
	// without a channel.
	Channel string `json:"channel"`
	// LoggedAt is when the logger accepted it.
	LoggedAt time.Time `json:"logged_at"`
	// Message is the event.
	Message Message `json:"message"`
}

// ChannelStats are the logger's counters for one channel.
type ChannelStats struct {
	Messages        int64
	Invalid         int64
	LastMessageTime time.Time
}

// Add adds another set of counters to these; the last message time is the
// later of the two.
func (c *ChannelStats) Add(o ChannelStats) {
	c.Messages += o.Messages
	c.Invalid += o.Invalid
	if o.LastMessageTime.After(c.LastMessageTime) {
		c.LastMessageTime = o.LastMessageTime
	}
}

// Fields of the stats hash: "<channel>|<stat>".
const (
	statMessages = "messages"
	statInvalid  = "invalid"
	statLastMS   = "last_message_ms"
)

// StatsField is the stats hash field of a channel's stat.
func StatsField(channel, stat string) string { return channel + "|" + stat }

// ParseChannelStats reads the stats hash (as HGETALL returns it).
func ParseChannelStats(h map[string]string) map[string]ChannelStats {
	out := map[string]ChannelStats{}
	for f, v := range h {
		i := strings.LastIndexByte(f, '|')
		if i < 0 {
			continue
		}
		ch, stat := f[:i], f[i+1:]
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			continue
		}
		cs := out[ch]
		switch stat {
		case statMessages:
			cs.Messages = n
		case statInvalid:
			cs.Invalid = n
		case statLastMS:
			cs.LastMessageTime = time.UnixMilli(n).UTC()
		default:
			continue
		}
		out[ch] = cs
	}
	return out
}

// loggedNotification is what the logger publishes on events:logged.
func loggedNotification(e LogEntry) []byte {
	return Message{
		Timestamp: e.LoggedAt,
		Component: ComponentEventLogger,
		Event:     "logged",
		Metadata: map[string]any{
			"id": e.ID, "channel": e.Channel,
			"component": e.Message.Component, "event": e.Message.Event,
			"timestamp": e.Message.Timestamp.UTC().Format(time.RFC3339Nano),
		},
	}.Encode()
}
