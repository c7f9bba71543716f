package messaging

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// DefaultMaxMessageBytes is the largest message or key value accepted.
const DefaultMaxMessageBytes = 1 << 20

// Shape is which of the standard's two message shapes an event came in.
type Shape string

const (
	// ShapeEnvelope is the standard's "Data Formats" notification:
	// {"timestamp", "component", "event", "metadata"}.
	ShapeEnvelope Shape = "envelope"
	// ShapeFlat is the payload of the standard's "Component Pub/Sub
	// Patterns": {"timestamp": ..., "trigger": "GAS_FEE_PAID"}. Its
	// component is the channel's publisher and its event the channel's
	// {event_type}.
	ShapeFlat Shape = "flat"
)

// Event is one decoded message of a channel.
//
// Every JSON object is an event. An object with string "component" and
// "event" fields is an envelope; any other object is a flat payload. The
// payload is kept exactly as it came: nothing is re-encoded, so a 24-digit
// integer, the order of fields and fields nobody here knows all survive.
type Event struct {
	// Channel is the catalog name (without the key prefix) the event came
	// on.
	Channel string
	// Component that published it: the envelope's "component", or for a
	// flat payload the channel's publisher in the catalog.
	Component string
	// Event type: the envelope's "event", or for a flat payload the
	// channel's {event_type} ("updated" on "position:updated").
	Event string
	// Timestamp is when the event happened, in UTC: the payload's
	// "timestamp" (see ParseTimestamp), or, when it has none that can be
	// read, the time it was received, and Nonconforming says why.
	Timestamp time.Time
	// Shape the event came in.
	Shape Shape
	// Metadata is an envelope's "metadata" as it came (nil when absent);
	// nil for a flat payload, whose data is the whole Payload.
	Metadata json.RawMessage
	// Payload is the message exactly as it was published.
	Payload json.RawMessage
	// Nonconforming is "" for an event with a usable timestamp, otherwise
	// ReasonMissingTimestamp or ReasonBadTimestamp. Such an event is still
	// an event (it is logged), and is counted apart.
	Nonconforming string
}

// Data is the event's own data: an envelope's metadata, or the whole flat
// payload (its timestamp included).
func (e Event) Data() json.RawMessage {
	if e.Shape != ShapeEnvelope {
		return e.Payload
	}
	if e.Metadata == nil {
		// An event made from its payload alone (read back from a log):
		// the envelope's metadata is in the payload.
		return scanTopLevel(e.Payload).metadata
	}
	return e.Metadata
}

// Decode unmarshals the event's Data into v. Numbers keep their precision
// when v holds json.Number or json.RawMessage fields.
func (e Event) Decode(v any) error {
	d := e.Data()
	if len(d) == 0 {
		d = []byte("null")
	}
	if err := json.Unmarshal(d, v); err != nil {
		return fmt.Errorf("messaging: decoding %s event data: %w", e.Channel, err)
	}
	return nil
}

// Reasons a message is invalid (skipped and counted as invalid), or
// nonconforming (logged, stamped with the receive time, counted apart).
const (
	ReasonTooLarge    = "too_large"
	ReasonInvalidJSON = "invalid_json"
	ReasonNotObject   = "not_object"

	ReasonMissingTimestamp = "missing_timestamp"
	ReasonBadTimestamp     = "bad_timestamp"
)

// InvalidError says why a message or key value is not an event of the
// standard: not JSON, not an object, or over the size limit. Reason is one
// of ReasonTooLarge, ReasonInvalidJSON and ReasonNotObject.
type InvalidError struct {
	Reason string
	Detail string
}

func (e *InvalidError) Error() string { return "messaging: " + e.Reason + ": " + e.Detail }

// DecodeOptions tune DecodeEvent.
type DecodeOptions struct {
	// MaxBytes is the largest payload accepted. default:
	// DefaultMaxMessageBytes.
	MaxBytes int
	// Received stamps an event with no usable timestamp. default: now.
	Received time.Time
}

// DecodeEvent decodes a message received on a channel of the catalog. It
// returns an *InvalidError for a payload that is not a JSON object or is
// over the size limit; anything else is an event. The event's Payload
// shares memory with payload.
func (c *Catalog) DecodeEvent(channel string, payload []byte, o DecodeOptions) (Event, error) {
	obj, err := checkObject(payload, o.MaxBytes)
	if err != nil {
		return Event{}, err
	}
	f := scanTopLevel(obj)
	e := Event{Channel: channel, Payload: obj}
	component, okc := jsonString(f.component)
	event, oke := jsonString(f.event)
	if okc && oke && component != "" && event != "" {
		e.Shape, e.Component, e.Event = ShapeEnvelope, component, event
		if f.metadata != nil {
			e.Metadata = f.metadata
		}
	} else {
		e.Shape, e.Component, e.Event = ShapeFlat, c.Publisher(channel), EventType(channel)
	}
	e.Timestamp, e.Nonconforming = readTimestamp(f.timestamp)
	if e.Nonconforming != "" {
		e.Timestamp = o.Received
		if e.Timestamp.IsZero() {
			e.Timestamp = time.Now()
		}
		e.Timestamp = e.Timestamp.UTC()
	}
	return e, nil
}

// DecodeKeyValue checks a key value of the standard (a JSON object with a
// timestamp, read as ParseTimestamp reads it) and returns its timestamp.
// A value that is an object without a usable timestamp returns a zero
// time and the nonconforming reason; one that is not an object returns an
// *InvalidError.
func DecodeKeyValue(value []byte, maxBytes int) (ts time.Time, nonconforming string, err error) {
	obj, err := checkObject(value, maxBytes)
	if err != nil {
		return time.Time{}, "", err
	}
	ts, nonconforming = readTimestamp(scanTopLevel(obj).timestamp)
	return ts, nonconforming, nil
}

func readTimestamp(raw []byte) (time.Time, string) {
	if raw == nil || bytes.Equal(raw, []byte("null")) {
		return time.Time{}, ReasonMissingTimestamp
	}
	s, ok := jsonString(raw)
	if !ok {
		return time.Time{}, ReasonBadTimestamp
	}
	t, err := ParseTimestamp(s)
	if err != nil {
		return time.Time{}, ReasonBadTimestamp
	}
	return t, ""
}

// checkObject returns the payload without surrounding white space when it
// is a JSON object within the size limit.
func checkObject(data []byte, maxBytes int) ([]byte, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxMessageBytes
	}
	if len(data) > maxBytes {
		return nil, &InvalidError{Reason: ReasonTooLarge, Detail: fmt.Sprintf("%d bytes, the limit is %d", len(data), maxBytes)}
	}
	trimmed := bytes.TrimSpace(data)
	if !json.Valid(trimmed) {
		return nil, &InvalidError{Reason: ReasonInvalidJSON, Detail: "not valid JSON"}
	}
	if trimmed[0] != '{' {
		return nil, &InvalidError{Reason: ReasonNotObject, Detail: "a message must be a JSON object"}
	}
	return trimmed, nil
}

// Envelope encodes a notification in the standard's "Data Formats" shape.
// metadata is marshalled with encoding/json; a json.RawMessage or []byte
// holding JSON is used as it is. nil metadata is written as {}.
func Envelope(ts time.Time, component, event string, metadata any) ([]byte, error) {
	md, err := marshalData(metadata)
	if err != nil {
		return nil, fmt.Errorf("messaging: encoding the metadata of %s %s: %w", component, event, err)
	}
	if md == nil {
		md = []byte("{}")
	}
	b := make([]byte, 0, 96+len(component)+len(event)+len(md))
	b = append(b, `{"timestamp":"`...)
	b = ts.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","component":`...)
	b = appendJSONString(b, component)
	b = append(b, `,"event":`...)
	b = appendJSONString(b, event)
	b = append(b, `,"metadata":`...)
	b = append(b, md...)
	b = append(b, '}')
	return b, nil
}

// marshalData encodes v as JSON; JSON given as json.RawMessage or []byte is
// checked and used as it is. nil gives nil.
func marshalData(v any) ([]byte, error) {
	switch d := v.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		if !json.Valid(d) {
			return nil, fmt.Errorf("not valid JSON")
		}
		return bytes.TrimSpace(d), nil
	case []byte:
		if !json.Valid(d) {
			return nil, fmt.Errorf("not valid JSON")
		}
		return bytes.TrimSpace(d), nil
	}
	return json.Marshal(v)
}

func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always encodes
	return append(b, q...)
}
