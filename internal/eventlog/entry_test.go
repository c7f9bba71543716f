package eventlog

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stratops/stratops/pkg/messaging"
)

// TestLogEntry_TheLineKeepsThePayloadAsItCame: a log line carries the
// payload byte for byte (a 24-digit integer, the fields' order), and
// reads back to the same event, an envelope's data included.
func TestLogEntry_TheLineKeepsThePayloadAsItCame(t *testing.T) {
	cat := messaging.Standard(messaging.ModeLive)
	flat := `{"timestamp":"2024-05-12T14:00:00Z","big":123456789012345678901234,"zeta":1,"alpha":{"x":1.10},"unknown_top":"kept"}`
	envelope, _ := messaging.Envelope(time.Date(2024, 5, 12, 14, 0, 0, 0, time.UTC), "position_monitor", "updated", map[string]any{"n": 1})
	for _, in := range []string{flat, string(envelope)} {
		e, err := cat.DecodeEvent("position:updated", []byte(in), messaging.DecodeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		line, err := json.Marshal(LogEntry{ID: "a", Channel: "position:updated", LoggedAt: time.Now(), Event: e})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(line), `"message":`+in) {
			t.Fatalf("the log line re-encoded the payload: %s", line)
		}
		var back LogEntry
		if err := json.Unmarshal(line, &back); err != nil || string(back.Event.Payload) != in || back.Event.Shape != e.Shape {
			t.Fatalf("log line round trip: %+v, %v", back, err)
		}
		if string(back.Event.Data()) != string(e.Data()) {
			t.Fatalf("read back, the event's data is %s, want %s", back.Event.Data(), e.Data())
		}
	}
}
