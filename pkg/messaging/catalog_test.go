package messaging

import (
	"strings"
	"testing"
	"time"
)

func TestStandard_HasTheStandardsChannelsKeysAndTTLs(t *testing.T) {
	c := Standard(ModeLive)
	if len(c.Channels) != 6 || len(c.Keys) != 9 {
		t.Fatalf("%d channels, %d keys; the standard has 6 and 9", len(c.Channels), len(c.Keys))
	}
	wantTTL := map[string]time.Duration{
		"position:snapshot": time.Hour, "exposure:current": time.Hour, "risk:current": time.Hour,
		"pnl:current": time.Hour, "strategy:rebalancing": time.Hour,
		"events:history": 24 * time.Hour, "pnl:hourly_series": 24 * time.Hour,
		"config:strategy": 0, "config:initial_state": 0,
	}
	for _, k := range c.Keys {
		want, ok := wantTTL[k.Name]
		if !ok {
			t.Errorf("unexpected key %s", k.Name)
		}
		if k.TTL.Duration != want {
			t.Errorf("%s TTL %s, want %s", k.Name, k.TTL, want)
		}
		if !NamePattern.MatchString(k.Name) {
			t.Errorf("%s breaks the naming pattern", k.Name)
		}
	}
	// The chain: position -> exposure -> risk -> P&L and strategy manager;
	// every channel but events:logged also has the event logger listening.
	wantMin := map[string]int{
		"position:updated": 2, "exposure:calculated": 2, "risk:calculated": 3,
		"pnl:calculated": 1, "strategy:instructions": 1, "events:logged": 0,
	}
	for _, ch := range c.Channels {
		if ch.MinSubscribers != wantMin[ch.Name] {
			t.Errorf("%s minSubscribers %d, want %d", ch.Name, ch.MinSubscribers, wantMin[ch.Name])
		}
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestParseCatalog_RoundTripsAndRejectsWhatBreaksTheStandard(t *testing.T) {
	c := Standard(ModeBacktest)
	c.KeyPrefix = "eth-basis:"
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseCatalog(b)
	if err != nil {
		t.Fatal(err)
	}
	if back.KeyPrefix != "eth-basis:" || len(back.Keys) != 9 || back.Keys[0].TTL.Duration != time.Hour {
		t.Fatalf("round trip lost data: %+v", back)
	}
	for _, tc := range []struct{ in, want string }{
		{`{"mode":"Live","channels":[],"keys":[],"extra":1}`, "unknown field"},
		{`{"mode":"Paper","channels":[],"keys":[]}`, "must be Backtest or Live"},
		{`{"mode":"Live","channels":[{"name":"Position:updated"}],"keys":[]}`, "channels[0].name"},
		{`{"mode":"Live","channels":[],"keys":[{"name":"a:b","ttl":"500ms"}]}`, "keys[0].ttl"},
		{`{"mode":"Live","keyPrefix":"a b","channels":[],"keys":[]}`, "whitespace"},
		{`{"mode":"Live","channels":[{"name":"a:b"},{"name":"a:b"}],"keys":[]}`, "listed twice"},
	} {
		if _, err := ParseCatalog([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseCatalog(%s) = %v, want an error with %q", tc.in, err, tc.want)
		}
	}
}

func TestCatalog_ReservesTheOperatorsAndTheLoggersNames(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"mode":"Live","channels":[{"name":"stratops:probe"}],"keys":[]}`, "channels[0].name \"stratops:probe\": the stratops: component is reserved"},
		{`{"mode":"Live","channels":[],"keys":[{"name":"events:channel_stats"}]}`, "keys[0].name \"events:channel_stats\": events:channel_stats is reserved"},
		{`{"mode":"Live","channels":[{"name":"a:b","maxInvalidRatio":2}],"keys":[]}`, "channels[0].maxInvalidRatio 2 must be between 0 and 1"},
	} {
		if _, err := ParseCatalog([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseCatalog(%s) = %v, want an error with %q", tc.in, err, tc.want)
		}
	}
	if Reserved("events:history") != "" || Reserved("position:snapshot") != "" {
		t.Fatal("a name of the standard is reserved")
	}
}

func TestCatalog_PublisherOfAChannel(t *testing.T) {
	c := Standard(ModeLive)
	for ch, want := range map[string]string{
		"risk:calculated": "risk_monitor", "events:logged": "event_logger", "hedger:filled": "hedger",
	} {
		if got := c.Publisher(ch); got != want {
			t.Errorf("Publisher(%s) = %s, want %s", ch, got, want)
		}
	}
	if r := (Channel{}).InvalidRatioLimit(); r != DefaultMaxInvalidRatio {
		t.Fatalf("default limit %v", r)
	}
	if r := (Channel{MaxInvalidRatio: new(0.0)}).InvalidRatioLimit(); r != 0 {
		t.Fatalf("an explicit 0 is %v, want 0 (no invalid message allowed)", r)
	}
}
