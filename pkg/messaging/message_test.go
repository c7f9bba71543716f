package messaging

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

var may12 = time.Date(2024, 5, 12, 14, 0, 0, 0, time.UTC)

func TestDecodeEvent_ReadsBothShapesOfTheStandard(t *testing.T) {
	cat := Standard(ModeLive)
	received := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name, channel, in string
		shape             Shape
		component, event  string
		ts                time.Time
		nonconforming     string
		data              string
	}{
		{"the Data Formats envelope", "position:updated",
			`{"timestamp": "2024-05-12T14:00:00Z", "component": "position_monitor", "event": "updated", "metadata": {"trigger": "GAS_FEE_PAID", "changes_count": 1}}`,
			ShapeEnvelope, "position_monitor", "updated", may12, "", `{"trigger": "GAS_FEE_PAID", "changes_count": 1}`},
		{"an envelope without metadata", "position:updated",
			`{"timestamp":"2024-05-12T14:00:00Z","component":"position_monitor","event":"updated"}`,
			ShapeEnvelope, "position_monitor", "updated", may12, "", ``},
		{"the position monitor's flat payload", "position:updated",
			`{"timestamp": "2024-05-12T14:00:00Z", "trigger": "GAS_FEE_PAID"}`,
			ShapeFlat, "position_monitor", "updated", may12, "", `{"timestamp": "2024-05-12T14:00:00Z", "trigger": "GAS_FEE_PAID"}`},
		{"the exposure monitor's flat payload", "exposure:calculated",
			`{"timestamp": "2024-05-12T14:00:00", "net_delta_eth": -5.12}`,
			ShapeFlat, "exposure_monitor", "calculated", may12, "", `{"timestamp": "2024-05-12T14:00:00", "net_delta_eth": -5.12}`},
		{"a flat payload with an event field but no component", "risk:calculated",
			`{"timestamp": "2024-05-12T14:00:00Z", "event": "fill"}`,
			ShapeFlat, "risk_monitor", "calculated", may12, "", `{"timestamp": "2024-05-12T14:00:00Z", "event": "fill"}`},
		{"names match exactly, not as encoding/json folds them", "risk:calculated",
			`{"timestamp": "2024-05-12T14:00:00Z", "Component": "x", "Event": "y"}`,
			ShapeFlat, "risk_monitor", "calculated", may12, "", `{"timestamp": "2024-05-12T14:00:00Z", "Component": "x", "Event": "y"}`},
		{"a channel outside the catalog takes its component from its name", "hedger:filled",
			`{"timestamp": "2024-05-12T14:00:00Z", "qty": 3}`,
			ShapeFlat, "hedger", "filled", may12, "", `{"timestamp": "2024-05-12T14:00:00Z", "qty": 3}`},
		{"no timestamp: logged, stamped on receipt, nonconforming", "pnl:calculated",
			`{"pnl_cumulative": 1238.45}`,
			ShapeFlat, "pnl_calculator", "calculated", received, ReasonMissingTimestamp, `{"pnl_cumulative": 1238.45}`},
		{"a null timestamp", "pnl:calculated", `{"timestamp": null}`,
			ShapeFlat, "pnl_calculator", "calculated", received, ReasonMissingTimestamp, `{"timestamp": null}`},
		{"an epoch number is not a timestamp of the standard", "pnl:calculated", `{"timestamp": 1715522400}`,
			ShapeFlat, "pnl_calculator", "calculated", received, ReasonBadTimestamp, `{"timestamp": 1715522400}`},
		{"an unreadable timestamp string", "position:updated",
			`{"timestamp":"12/05/2024","component":"position_monitor","event":"updated","metadata":{}}`,
			ShapeEnvelope, "position_monitor", "updated", received, ReasonBadTimestamp, `{}`},
		{"metadata that is not an object is kept as given", "position:updated",
			`{"timestamp":"2024-05-12T14:00:00Z","component":"position_monitor","event":"updated","metadata":[1,2]}`,
			ShapeEnvelope, "position_monitor", "updated", may12, "", `[1,2]`},
		{"escaped names and values", "position:updated",
			`{"time\u0073tamp":"2024-05-12T14:00:00Z","component":"pos\"x","event":"up\\d"}`,
			ShapeEnvelope, "pos\"x", "up\\d", may12, "", ``},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, err := cat.DecodeEvent(tc.channel, []byte(" \n"+tc.in+"\n"), DecodeOptions{Received: received})
			if err != nil {
				t.Fatal(err)
			}
			if e.Shape != tc.shape || e.Component != tc.component || e.Event != tc.event || e.Channel != tc.channel {
				t.Fatalf("got %s %s/%s on %s, want %s %s/%s", e.Shape, e.Component, e.Event, e.Channel, tc.shape, tc.component, tc.event)
			}
			if !e.Timestamp.Equal(tc.ts) || e.Timestamp.Location() != time.UTC || e.Nonconforming != tc.nonconforming {
				t.Fatalf("timestamp %v (%q), want %v (%q)", e.Timestamp, e.Nonconforming, tc.ts, tc.nonconforming)
			}
			if string(e.Payload) != tc.in {
				t.Fatalf("payload %s, want it as it came: %s", e.Payload, tc.in)
			}
			if string(e.Data()) != tc.data {
				t.Fatalf("data %s, want %s", e.Data(), tc.data)
			}
		})
	}
}

func TestDecodeEvent_KeepsThePayloadAsItCame(t *testing.T) {
	in := `{"timestamp":"2024-05-12T14:00:00Z","big":123456789012345678901234,"zeta":1,"alpha":{"x":1.10},"unknown_top":"kept"}`
	cat := Standard(ModeLive)
	e, err := cat.DecodeEvent("position:updated", []byte(in), DecodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if string(e.Payload) != in || e.Shape != ShapeFlat {
		t.Fatalf("the payload was re-encoded: %s", e.Payload)
	}
	var v struct {
		Big json.Number `json:"big"`
	}
	if err := e.Decode(&v); err != nil || v.Big.String() != "123456789012345678901234" {
		t.Fatalf("Decode lost the 24-digit integer: %v, %v", v.Big, err)
	}
}

func TestDecodeEvent_InvalidIsNotJSONNotAnObjectOrTooLarge(t *testing.T) {
	cat := Standard(ModeLive)
	cases := []struct {
		name, in, reason string
		max              int
	}{
		{"not json", `{"timestamp":`, ReasonInvalidJSON, 0},
		{"plain text", `hello`, ReasonInvalidJSON, 0},
		{"empty", ``, ReasonInvalidJSON, 0},
		{"an array", `[1,2]`, ReasonNotObject, 0},
		{"a string", `"x"`, ReasonNotObject, 0},
		{"null", `null`, ReasonNotObject, 0},
		{"over the size limit", `{"timestamp":"2024-05-12T14:00:00Z","x":"` + strings.Repeat("x", 100) + `"}`, ReasonTooLarge, 64},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cat.DecodeEvent("position:updated", []byte(tc.in), DecodeOptions{MaxBytes: tc.max})
			var ie *InvalidError
			if !errors.As(err, &ie) || ie.Reason != tc.reason {
				t.Fatalf("got %v, want an InvalidError %q", err, tc.reason)
			}
			if !strings.HasPrefix(err.Error(), "messaging: ") {
				t.Fatalf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestParseTimestamp_ReadsWhatComponentsWrite(t *testing.T) {
	ok := []struct {
		in   string
		want time.Time
	}{
		{"2024-05-12T14:00:00Z", may12},
		{"2024-05-12T14:00:00z", may12},
		{"2024-05-12T14:00:00.5Z", may12.Add(500 * time.Millisecond)},
		{"2024-05-12T14:00:00.123456789123Z", may12.Add(123456789)},
		{"2024-05-12T14:00:00.123456+00:00", may12.Add(123456 * time.Microsecond)}, // Python, aware
		{"2024-05-12T16:30:00+02:30", may12},
		{"2024-05-12T09:00:00-05:00", may12},
		{"2024-05-12T14:00:00.123456", may12.Add(123456 * time.Microsecond)}, // Python utcnow().isoformat()
		{"2024-05-12T14:00:00", may12},
		{"2024-05-12 14:00:00", may12}, // isoformat(sep=" ")
		{"2024-02-29T00:00:00Z", time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC)},
	}
	for _, tc := range ok {
		got, err := ParseTimestamp(tc.in)
		if err != nil || !got.Equal(tc.want) || got.Location() != time.UTC {
			t.Errorf("ParseTimestamp(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{
		"", "2024-05-12", "12/05/2024 14:00:00", "2024-05-12T14:00", "2024-13-12T14:00:00Z", "2023-02-29T00:00:00Z",
		"2024-05-12T24:00:00Z", "2024-05-12T14:00:00.Z", "2024-05-12T14:00:00+0200", "2024-05-12T14:00:00 UTC",
		"2024-05-12X14:00:00Z", "2024-05-12T14:00:00+25:00", "1715522400",
	} {
		if got, err := ParseTimestamp(in); err == nil {
			t.Errorf("ParseTimestamp(%q) = %v, want an error", in, got)
		}
	}
}

func TestDecodeKeyValue_TakesPythonsTimestamps(t *testing.T) {
	ts, nc, err := DecodeKeyValue([]byte(`{"timestamp": "2024-05-12T14:00:00.000001", "wallet": {}}`), 0)
	if err != nil || nc != "" || !ts.Equal(may12.Add(time.Microsecond)) {
		t.Fatalf("got %v %q %v", ts, nc, err)
	}
	if _, nc, err := DecodeKeyValue([]byte(`{"wallet":{}}`), 0); err != nil || nc != ReasonMissingTimestamp {
		t.Fatalf("a value without a timestamp: %q, %v", nc, err)
	}
	var ie *InvalidError
	if _, _, err := DecodeKeyValue([]byte(`[1]`), 0); !errors.As(err, &ie) {
		t.Fatalf("an array value: %v", err)
	}
}

func TestEnvelope_IsWhatDecodeEventReads(t *testing.T) {
	b, err := Envelope(may12, "position_monitor", "updated", map[string]any{"trigger": "GAS_FEE_PAID"})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"timestamp":"2024-05-12T14:00:00Z","component":"position_monitor","event":"updated","metadata":{"trigger":"GAS_FEE_PAID"}}` {
		t.Fatalf("envelope %s", b)
	}
	cat := Standard(ModeLive)
	if e, err := cat.DecodeEvent("position:updated", b, DecodeOptions{}); err != nil || e.Shape != ShapeEnvelope || !e.Timestamp.Equal(may12) {
		t.Fatalf("decoded %+v, %v", e, err)
	}
	if _, err := Envelope(may12, "a", "b", json.RawMessage(`{`)); err == nil {
		t.Fatal("invalid raw metadata was accepted")
	}
}

func TestStampValue_AddsATimestampOnlyWhereThereIsNone(t *testing.T) {
	for in, want := range map[string]string{
		`{"a":1}`:                 `{"timestamp":"2024-05-12T14:00:00Z","a":1}`,
		`{}`:                      `{"timestamp":"2024-05-12T14:00:00Z"}`,
		`{ }`:                     `{"timestamp":"2024-05-12T14:00:00Z" }`,
		`{"timestamp":"x","a":1}`: `{"timestamp":"x","a":1}`,
		`[1]`:                     `[1]`,
	} {
		if got := string(stampValue([]byte(in), may12)); got != want {
			t.Errorf("stampValue(%s) = %s, want %s", in, got, want)
		}
		if !json.Valid(stampValue([]byte(in), may12)) {
			t.Errorf("stampValue(%s) is not JSON", in)
		}
	}
}

func FuzzDecodeEvent(f *testing.F) {
	for _, s := range []string{
		`{"timestamp":"2024-05-12T14:00:00Z","component":"a","event":"b","metadata":{}}`,
		`{"timestamp": "2024-05-12T14:00:00.123456", "trigger": "GAS_FEE_PAID"}`,
		`{"timestamp":null}`, `[]`, `{`, `"x"`, `{"metadata":{"a":[1,{"b":null}]}}`, "\x00\xff",
		`{"a\"b":"}{","component":"\u0041","event":"\\"}`, `{"x":[{"y":"]"}],"timestamp":"2024-05-12 14:00:00"}`,
	} {
		f.Add([]byte(s))
	}
	cat := Standard(ModeLive)
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := cat.DecodeEvent("position:updated", data, DecodeOptions{MaxBytes: 4096})
		if err != nil {
			var ie *InvalidError
			if !errors.As(err, &ie) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			if json.Valid(data) && len(data) <= 4096 && strings.HasPrefix(strings.TrimSpace(string(data)), "{") {
				t.Fatalf("a JSON object was rejected: %v", err)
			}
			return
		}
		if e.Component == "" || e.Event == "" || e.Timestamp.IsZero() || !json.Valid(e.Payload) {
			t.Fatalf("an incomplete event: %+v", e)
		}
		// What encoding/json reads agrees with the scanner.
		var std map[string]json.RawMessage
		if err := json.Unmarshal(e.Payload, &std); err != nil {
			t.Fatalf("the payload is not an object: %v", err)
		}
		if e.Shape == ShapeEnvelope && e.Metadata != nil && !json.Valid(e.Metadata) {
			t.Fatalf("metadata %q is not JSON", e.Metadata)
		}
	})
}

func FuzzParseTimestamp(f *testing.F) {
	for _, s := range []string{
		"2024-05-12T14:00:00Z", "2024-05-12T14:00:00.123456", "2024-05-12T14:00:00.123456+00:00", "2024-05-12 14:00:00-05:30",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseTimestamp(s)
		if err != nil {
			return
		}
		// Whatever is accepted with a zone, Go's RFC 3339 parser reads the same.
		if len(s) > 19 && (strings.HasSuffix(s, "Z") || strings.Contains(s[19:], "+") || strings.Contains(s[19:], "-")) && s[10] == 'T' {
			std, err := time.Parse(time.RFC3339Nano, s)
			if err == nil && !std.Equal(got) {
				t.Fatalf("%q: %v, time.Parse says %v", s, got, std)
			}
		}
		if got.Location() != time.UTC {
			t.Fatalf("%q gave a time not in UTC", s)
		}
	})
}
