package eventlog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/stratops/stratops/pkg/messaging"
)

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
	Event messaging.Event
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
	Shape         messaging.Shape `json:"shape"`
	Nonconforming string          `json:"nonconforming,omitempty"`
	Message       json.RawMessage `json:"message"`
}

// MarshalJSON writes the entry as one line of the event log.
func (e LogEntry) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err := enc.Encode(logLine{
		ID: e.ID, Channel: e.Channel, LoggedAt: e.LoggedAt, Timestamp: messaging.FormatTimestamp(e.Event.Timestamp),
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
	ts, err := messaging.ParseTimestamp(l.Timestamp)
	if err != nil {
		return fmt.Errorf("eventlog: log entry %s: timestamp %q: %w", l.ID, l.Timestamp, err)
	}
	*e = LogEntry{ID: l.ID, Channel: l.Channel, LoggedAt: l.LoggedAt, Event: messaging.Event{
		Channel: l.Channel, Component: l.Component, Event: l.Event, Timestamp: ts, Shape: l.Shape,
		Nonconforming: l.Nonconforming, Payload: l.Message,
	}}
	return nil
}

// notification is what the logger publishes on events:logged for an entry
// the history has: an envelope from the event logger naming the entry.
func notification(e LogEntry) []byte {
	md, _ := json.Marshal(struct {
		ID        string `json:"id"`
		Channel   string `json:"channel"`
		Component string `json:"component"`
		Event     string `json:"event"`
		Timestamp string `json:"timestamp"`
	}{e.ID, e.Channel, e.Event.Component, e.Event.Event, e.Event.Timestamp.UTC().Format(time.RFC3339Nano)})
	b, _ := messaging.Envelope(e.LoggedAt, messaging.ComponentEventLogger, messaging.EventType(messaging.ChannelEventsLogged), json.RawMessage(md))
	return b
}
