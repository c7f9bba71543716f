package eventlogger

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// DefaultMaxMessageBytes is the largest message or key value accepted.
const DefaultMaxMessageBytes = 1 << 20

// Message is a channel notification of the standard:
// {timestamp, component, event, metadata}.
type Message struct {
	// Timestamp is when the event happened, RFC 3339.
	Timestamp time.Time `json:"timestamp"`
	// Component that published it, e.g. "position_monitor".
	Component string `json:"component"`
	// Event type, e.g. "updated".
	Event string `json:"event"`
	// Metadata is the event's details; always a JSON object.
	Metadata map[string]any `json:"metadata"`
}

// DecodeError says why a message or key value was rejected. Reason is a
// short stable word for metrics and logs.
type DecodeError struct {
	Reason string // one of the Reason* constants
	Field  string // the offending field, when there is one
	Detail string
}

// Reasons a message or key value is rejected.
const (
	ReasonTooLarge     = "too_large"
	ReasonInvalidJSON  = "invalid_json"
	ReasonNotObject    = "not_object"
	ReasonMissingField = "missing_field"
	ReasonWrongType    = "wrong_type"
	ReasonBadTimestamp = "bad_timestamp"
)

func (e *DecodeError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("eventlogger: %s: field %q: %s", e.Reason, e.Field, e.Detail)
	}
	return fmt.Sprintf("eventlogger: %s: %s", e.Reason, e.Detail)
}

// DecodeMessage strictly decodes a channel notification: a JSON object
// with a string RFC 3339 timestamp, non-empty string component and event,
// and metadata that, when present, is an object. Data over maxBytes is
// rejected before it is parsed (maxBytes <= 0 means the default, 1 MiB).
func DecodeMessage(data []byte, maxBytes int) (Message, error) {
	obj, err := decodeObject(data, maxBytes)
	if err != nil {
		return Message{}, err
	}
	var m Message
	if m.Timestamp, err = timestampField(obj); err != nil {
		return Message{}, err
	}
	if m.Component, err = stringField(obj, "component"); err != nil {
		return Message{}, err
	}
	if m.Event, err = stringField(obj, "event"); err != nil {
		return Message{}, err
	}
	m.Metadata = map[string]any{}
	if raw, ok := obj["metadata"]; ok && !isNull(raw) {
		if err := json.Unmarshal(raw, &m.Metadata); err != nil || m.Metadata == nil {
			return Message{}, &DecodeError{Reason: ReasonWrongType, Field: "metadata", Detail: "must be a JSON object"}
		}
	}
	return m, nil
}

// DecodeKeyValue checks a key value of the standard: a JSON object (a full
// snapshot) with an RFC 3339 timestamp. It returns the timestamp.
func DecodeKeyValue(data []byte, maxBytes int) (time.Time, error) {
	obj, err := decodeObject(data, maxBytes)
	if err != nil {
		return time.Time{}, err
	}
	return timestampField(obj)
}

// Encode writes the message as compact JSON with an RFC 3339 timestamp.
func (m Message) Encode() []byte {
	md := m.Metadata
	if md == nil {
		md = map[string]any{}
	}
	b, err := json.Marshal(struct {
		Timestamp string         `json:"timestamp"`
		Component string         `json:"component"`
		Event     string         `json:"event"`
		Metadata  map[string]any `json:"metadata"`
	}{m.Timestamp.UTC().Format(time.RFC3339Nano), m.Component, m.Event, md})
	if err != nil {
		// Metadata came from JSON (or from code with JSON-safe values).
		panic(fmt.Sprintf("eventlogger: encoding a message: %v", err))
	}
	return b
}

func decodeObject(data []byte, maxBytes int) (map[string]json.RawMessage, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxMessageBytes
	}
	if len(data) > maxBytes {
		return nil, &DecodeError{Reason: ReasonTooLarge, Detail: fmt.Sprintf("%d bytes, the limit is %d", len(data), maxBytes)}
	}
	trimmed := bytes.TrimSpace(data)
	if !json.Valid(trimmed) {
		return nil, &DecodeError{Reason: ReasonInvalidJSON, Detail: "not valid JSON"}
	}
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, &DecodeError{Reason: ReasonNotObject, Detail: "must be a JSON object"}
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &obj); err != nil {
		return nil, &DecodeError{Reason: ReasonInvalidJSON, Detail: err.Error()}
	}
	return obj, nil
}

func timestampField(obj map[string]json.RawMessage) (time.Time, error) {
	s, err := stringField(obj, "timestamp")
	if err != nil {
		return time.Time{}, err
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, &DecodeError{Reason: ReasonBadTimestamp, Field: "timestamp", Detail: fmt.Sprintf("%q is not RFC 3339", s)}
	}
	return t, nil
}

func stringField(obj map[string]json.RawMessage, name string) (string, error) {
	raw, ok := obj[name]
	if !ok || isNull(raw) {
		return "", &DecodeError{Reason: ReasonMissingField, Field: name, Detail: "is required"}
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", &DecodeError{Reason: ReasonWrongType, Field: name, Detail: "must be a string"}
	}
	if s == "" {
		return "", &DecodeError{Reason: ReasonMissingField, Field: name, Detail: "must not be empty"}
	}
	return s, nil
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }
