package eventlogger

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDecodeMessage_AcceptsTheStandardsExample(t *testing.T) {
	m, err := DecodeMessage([]byte(`{
	  "timestamp": "2024-05-12T14:00:00Z",
	  "component": "position_monitor",
	  "event": "updated",
	  "metadata": {"trigger": "GAS_FEE_PAID", "changes_count": 1}
	}`), 0)
	if err != nil {
		t.Fatal(err)
	}
	if m.Component != "position_monitor" || m.Event != "updated" || m.Metadata["trigger"] != "GAS_FEE_PAID" {
		t.Fatalf("decoded %+v", m)
	}
	if !m.Timestamp.Equal(time.Date(2024, 5, 12, 14, 0, 0, 0, time.UTC)) {
		t.Fatalf("timestamp %v", m.Timestamp)
	}
	back, err := DecodeMessage(m.Encode(), 0)
	if err != nil || !back.Timestamp.Equal(m.Timestamp) || back.Metadata["changes_count"] != 1.0 {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
}

func TestDecodeMessage_RejectsWithAReasonThatSaysWhatIsWrong(t *testing.T) {
	cases := []struct {
		name, in, reason, field string
		max                     int
	}{
		{"not json", `{"timestamp":`, ReasonInvalidJSON, "", 0},
		{"plain text", `hello`, ReasonInvalidJSON, "", 0},
		{"an array", `[1,2]`, ReasonNotObject, "", 0},
		{"missing timestamp", `{"component":"a","event":"b","metadata":{}}`, ReasonMissingField, "timestamp", 0},
		{"missing component", `{"timestamp":"2024-05-12T14:00:00Z","event":"b"}`, ReasonMissingField, "component", 0},
		{"empty event", `{"timestamp":"2024-05-12T14:00:00Z","component":"a","event":""}`, ReasonMissingField, "event", 0},
		{"numeric component", `{"timestamp":"2024-05-12T14:00:00Z","component":7,"event":"b"}`, ReasonWrongType, "component", 0},
		{"metadata not an object", `{"timestamp":"2024-05-12T14:00:00Z","component":"a","event":"b","metadata":[1]}`, ReasonWrongType, "metadata", 0},
		{"timestamp not RFC 3339", `{"timestamp":"12/05/2024","component":"a","event":"b"}`, ReasonBadTimestamp, "timestamp", 0},
		{"over the size limit", `{"timestamp":"2024-05-12T14:00:00Z","component":"a","event":"b","metadata":{"x":"` + strings.Repeat("x", 100) + `"}}`, ReasonTooLarge, "", 64},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeMessage([]byte(tc.in), tc.max)
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("want a DecodeError, got %v", err)
			}
			if de.Reason != tc.reason || de.Field != tc.field {
				t.Fatalf("got reason %q field %q (%v), want %q %q", de.Reason, de.Field, err, tc.reason, tc.field)
			}
			if !strings.HasPrefix(err.Error(), "eventlogger: ") {
				t.Fatalf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestDecodeKeyValue_NeedsAnObjectWithATimestamp(t *testing.T) {
	ts, err := DecodeKeyValue([]byte(`{"timestamp":"2024-05-12T14:00:00Z","wallet":{}}`), 0)
	if err != nil || ts.Year() != 2024 {
		t.Fatalf("got %v, %v", ts, err)
	}
	if _, err := DecodeKeyValue([]byte(`{"wallet":{}}`), 0); err == nil {
		t.Fatal("a key value without timestamp was accepted")
	}
}

func FuzzDecodeMessage(f *testing.F) {
	for _, s := range []string{
		`{"timestamp":"2024-05-12T14:00:00Z","component":"a","event":"b","metadata":{}}`,
		`{"timestamp":null}`, `[]`, `{`, `"x"`, `{"metadata":{"a":[1,{"b":null}]}}`, "\x00\xff",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeMessage(data, 4096)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		if m.Component == "" || m.Event == "" || m.Metadata == nil {
			t.Fatalf("accepted an incomplete message: %+v", m)
		}
		if _, err := DecodeMessage(m.Encode(), 0); err != nil {
			t.Fatalf("re-encoding an accepted message gives one that is rejected: %v", err)
		}
	})
}
