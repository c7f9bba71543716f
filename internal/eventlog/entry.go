package eventlog

import (
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
	return e.AppendJSON(make([]byte, 0, 256+len(e.Event.Payload))), nil
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
// the history has (see appendNotification).
func notification(e LogEntry) []byte {
	return appendNotification(make([]byte, 0, 256), e)
}
