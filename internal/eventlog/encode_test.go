package eventlog

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/stratops/stratops/pkg/messaging"
)

// TestEncode_AsEncodingJSON: the hand-written line and notification are
// what encoding/json writes for them (HTML escaping off), for plain
// strings and for every kind of character a string may need escaped.
func TestEncode_AsEncodingJSON(t *testing.T) {
	logged := time.Date(2026, 12, 7, 4, 5, 6, 789000000, time.UTC)
	strs := []string{"", "position:updated", `quote " and \ backslash`, "tab\tnew\nline\rcr\bb\ff", "\x00\x01\x1f ctl",
		"é ünïcode ✓", "bad \xff utf8", "line\u2028sep\u2029", "<html> & 'q'"}
	payloads := []string{`{"a":1}`, `{"timestamp": "2024-05-12T14:00:00Z", "x" : [1, 2]}`, "{\n\t\"s\": \"a b\"\n}"}
	for _, s := range strs {
		for _, p := range payloads {
			e := LogEntry{ID: s, Channel: s, LoggedAt: logged, Event: messaging.Event{
				Timestamp: logged.Add(-time.Second), Component: s, Event: s, Shape: messaging.ShapeEnvelope,
				Nonconforming: s, Payload: json.RawMessage(p),
			}}
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			if err := enc.Encode(logLine{ID: e.ID, Channel: e.Channel, LoggedAt: e.LoggedAt, Timestamp: messaging.FormatTimestamp(e.Event.Timestamp),
				Component: e.Event.Component, Event: e.Event.Event, Shape: e.Event.Shape, Nonconforming: e.Event.Nonconforming, Message: e.Event.Payload}); err != nil {
				t.Fatal(err)
			}
			want := bytes.TrimRight(buf.Bytes(), "\n")
			if got := e.AppendJSON(nil); !bytes.Equal(got, want) {
				t.Errorf("line for %q, %q:\n got %s\nwant %s", s, p, got, want)
			}

			md, _ := json.Marshal(map[string]string{"id": e.ID, "channel": e.Channel, "component": e.Event.Component, "event": e.Event.Event,
				"timestamp": e.Event.Timestamp.UTC().Format(time.RFC3339Nano)})
			old, _ := messaging.Envelope(e.LoggedAt, messaging.ComponentEventLogger, loggedEvent, json.RawMessage(md))
			var a, b any
			if err := json.Unmarshal(notification(e), &a); err != nil {
				t.Fatalf("notification for %q is not JSON: %v: %s", s, err, notification(e))
			}
			_ = json.Unmarshal(old, &b)
			if !reflect.DeepEqual(a, b) {
				t.Errorf("notification for %q:\n got %s\nwant %s", s, notification(e), old)
			}
		}
	}
}

func BenchmarkEncode_LineAndNotification(b *testing.B) {
	e := LogEntry{ID: "0123456789abcdef-42", Channel: "position:updated", LoggedAt: time.Now(), Event: messaging.Event{
		Timestamp: time.Now(), Component: "position_monitor", Event: "updated", Shape: messaging.ShapeEnvelope,
		Payload: json.RawMessage(`{"timestamp":"2024-05-12T14:00:00Z","component":"position_monitor","event":"updated","metadata":{"seq":1}}`),
	}}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = e.AppendJSON(buf[:0])
		buf = appendNotification(buf[:0], e)
	}
}
