package eventlog

import (
	"bytes"
	"encoding/json"
	"time"
	"unicode/utf8"

	"github.com/stratops/stratops/pkg/messaging"
)

// The logger writes a line and publishes a notification for every event:
// both are appended here field by field into a buffer the caller keeps,
// rather than through encoding/json's reflection (which cost the logger a
// fifth of its time per event). The bytes are what encoding/json writes
// with HTML escaping off, which TestEncode_AsEncodingJSON holds.

// AppendJSON appends the entry as one line of the event log (without the
// newline) to b.
func (e LogEntry) AppendJSON(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, e.ID)
	b = append(b, `,"channel":`...)
	b = appendString(b, e.Channel)
	b = append(b, `,"logged_at":"`...)
	b = e.LoggedAt.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","timestamp":"`...)
	b = e.Event.Timestamp.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","component":`...)
	b = appendString(b, e.Event.Component)
	b = append(b, `,"event":`...)
	b = appendString(b, e.Event.Event)
	b = append(b, `,"shape":`...)
	b = appendString(b, string(e.Event.Shape))
	if e.Event.Nonconforming != "" {
		b = append(b, `,"nonconforming":`...)
		b = appendString(b, e.Event.Nonconforming)
	}
	b = append(b, `,"message":`...)
	b = appendCompact(b, e.Event.Payload)
	return append(b, '}')
}

// loggedEvent is the event type of the events:logged notification.
var loggedEvent = messaging.EventType(messaging.ChannelEventsLogged)

// appendNotification appends what the logger publishes on events:logged
// for an entry the history has: an envelope from the event logger naming
// the entry.
func appendNotification(b []byte, e LogEntry) []byte {
	b = append(b, `{"timestamp":"`...)
	b = e.LoggedAt.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","component":`...)
	b = appendString(b, messaging.ComponentEventLogger)
	b = append(b, `,"event":`...)
	b = appendString(b, loggedEvent)
	b = append(b, `,"metadata":{"id":`...)
	b = appendString(b, e.ID)
	b = append(b, `,"channel":`...)
	b = appendString(b, e.Channel)
	b = append(b, `,"component":`...)
	b = appendString(b, e.Event.Component)
	b = append(b, `,"event":`...)
	b = appendString(b, e.Event.Event)
	b = append(b, `,"timestamp":"`...)
	b = e.Event.Timestamp.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, `"}}`...)
}

// appendCompact appends JSON (checked when the event was decoded) without
// white space outside its strings. A tab, newline or carriage return can
// only be white space (inside a string they are escaped); a space may be
// either, so a payload with one is compacted by encoding/json.
func appendCompact(b []byte, raw []byte) []byte {
	if !bytes.ContainsAny(raw, " \t\r\n") {
		return append(b, raw...)
	}
	buf := bytes.NewBuffer(b)
	if err := json.Compact(buf, raw); err != nil {
		return append(b, raw...)
	}
	return buf.Bytes()
}

const hex = "0123456789abcdef"

// appendString appends s as a JSON string, escaped as encoding/json does
// with HTML escaping off: quote, backslash and control characters
// escaped, invalid UTF-8 as U+FFFD, U+2028 and U+2029 as \u escapes.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
