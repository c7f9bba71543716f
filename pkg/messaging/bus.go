package messaging

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ErrKeyNotFound is returned by Get for a key that does not exist (or
// expired).
var ErrKeyNotFound = errors.New("messaging: key not found")

// ErrBadCursor is a history cursor that no page of History gave.
var ErrBadCursor = errors.New("messaging: not a history cursor: pass the \"next\" of a page")

// Bus is where a strategy's messages travel and its state is kept: Redis in
// live (and in a backtest that has it), memory otherwise. Names given to a
// Bus are catalog names; the bus adds the key prefix, so that nothing it
// does leaves the strategy's prefix. Components use it through a Client;
// Record, RecentIDs, History and WriteStats are the event logger's.
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
	// Record (the event logger's) writes logged events in order: first an
	// entry in the events:history stream for each and the history's TTL,
	// all or none; then, once they are written, a notification on
	// events:logged for each. A *NotifyError says the history was written
	// and the notifications were not: the batch must not be retried.
	Record(ctx context.Context, entries []LogEntry) error
	// Notify publishes the events:logged notifications of entries already
	// in the history (those a failed Record wrote without saying so).
	Notify(ctx context.Context, entries []LogEntry) error
	// RecentIDs returns the IDs of the newest n history entries, so that a
	// batch whose fate is unknown after a failure is not written twice.
	RecentIDs(ctx context.Context, n int) (map[string]bool, error)
	// History returns a page of up to n history entries, oldest first:
	// the newest when before is empty, else those older than the cursor
	// before. next is the cursor of the page of older entries, empty when
	// there are none. A cursor the bus did not give is ErrBadCursor.
	History(ctx context.Context, n int, before string) (entries []LogEntry, next string, err error)
	// WriteStats adds the counters of an update to the per-channel stats
	// hash and replaces its window.
	WriteStats(ctx context.Context, u StatsUpdate) error
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

// LogEntry is one event the logger accepted: what events:history holds,
// and what the logger writes as a line.
type LogEntry struct {
	// ID is unique per logger process; it makes retries idempotent.
	ID string
	// Channel the event came from, or "http" for one posted to the
	// logger's /events without a channel.
	Channel string
	// LoggedAt is when the logger accepted it.
	LoggedAt time.Time
	// Event is the decoded event, with its payload as it came.
	Event Event
}

// logLine is a LogEntry's JSON: the event's fields, then the payload as it
// came (compacted, which changes white space only).
type logLine struct {
	ID            string          `json:"id"`
	Channel       string          `json:"channel"`
	LoggedAt      time.Time       `json:"logged_at"`
	Timestamp     string          `json:"timestamp"`
	Component     string          `json:"component"`
	Event         string          `json:"event"`
	Shape         Shape           `json:"shape"`
	Nonconforming string          `json:"nonconforming,omitempty"`
	Message       json.RawMessage `json:"message"`
}

// MarshalJSON writes the entry as one line of the event log.
func (e LogEntry) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err := enc.Encode(logLine{
		ID: e.ID, Channel: e.Channel, LoggedAt: e.LoggedAt, Timestamp: FormatTimestamp(e.Event.Timestamp),
		Component: e.Event.Component, Event: e.Event.Event, Shape: e.Event.Shape,
		Nonconforming: e.Event.Nonconforming, Message: e.Event.Payload,
	})
	return bytes.TrimRight(buf.Bytes(), "\n"), err
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (e *LogEntry) UnmarshalJSON(b []byte) error {
	var l logLine
	if err := json.Unmarshal(b, &l); err != nil {
		return err
	}
	ts, err := ParseTimestamp(l.Timestamp)
	if err != nil {
		return fmt.Errorf("messaging: log entry %s: timestamp %q: %w", l.ID, l.Timestamp, err)
	}
	*e = LogEntry{ID: l.ID, Channel: l.Channel, LoggedAt: l.LoggedAt, Event: Event{
		Channel: l.Channel, Component: l.Component, Event: l.Event, Timestamp: ts, Shape: l.Shape,
		Nonconforming: l.Nonconforming, Payload: l.Message,
	}}
	if l.Shape == ShapeEnvelope {
		e.Event.Metadata = scanTopLevel(l.Message).metadata
	}
	return nil
}

// loggedNotification is what the logger publishes on events:logged.
func loggedNotification(e LogEntry) []byte {
	md := make([]byte, 0, 160)
	md = append(md, `{"id":`...)
	md = appendJSONString(md, e.ID)
	md = append(md, `,"channel":`...)
	md = appendJSONString(md, e.Channel)
	md = append(md, `,"component":`...)
	md = appendJSONString(md, e.Event.Component)
	md = append(md, `,"event":`...)
	md = appendJSONString(md, e.Event.Event)
	md = append(md, `,"timestamp":"`...)
	md = e.Event.Timestamp.UTC().AppendFormat(md, time.RFC3339Nano)
	md = append(md, `"}`...)
	b, _ := Envelope(e.LoggedAt, ComponentEventLogger, EventType(ChannelEventsLogged), json.RawMessage(md))
	return b
}
