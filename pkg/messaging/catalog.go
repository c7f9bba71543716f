package messaging

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"
	"unicode"
)

// NamePattern is the standard's naming rule for channels
// ({component}:{event_type}) and keys ({component}:{data_type}).
var NamePattern = regexp.MustCompile(`^[a-z][a-z0-9_]*:[a-z][a-z0-9_]*$`)

// Mode is how a strategy runs; the standard's rules differ between the two.
type Mode string

const (
	// ModeBacktest: Redis is optional, the logger falls back to memory.
	ModeBacktest Mode = "Backtest"
	// ModeLive: Redis is required.
	ModeLive Mode = "Live"
)

// Components of the standard, as they name themselves in messages.
const (
	ComponentPositionMonitor = "position_monitor"
	ComponentExposureMonitor = "exposure_monitor"
	ComponentRiskMonitor     = "risk_monitor"
	ComponentPnLCalculator   = "pnl_calculator"
	ComponentStrategyManager = "strategy_manager"
	ComponentEventLogger     = "event_logger"
)

// Names of the channels and keys the event logger itself writes.
const (
	ChannelEventsLogged = "events:logged"
	KeyEventsHistory    = "events:history"
	// KeyChannelStats is the hash of per-channel counters the logger keeps
	// and the operator reads. It is the logger's bookkeeping, not a key of
	// the standard, so it is not in the catalog's Keys, and no Strategy may
	// declare it.
	KeyChannelStats = "events:channel_stats"
	// ReservedComponent is the component of the operator's own keys (its
	// probe keys are stratops:probe:*). No Strategy may declare a channel or
	// key of it.
	ReservedComponent = "stratops"
	// ProbeNamePrefix starts the names of the keys and channels the
	// operator's probes write (with the Strategy's key prefix before it);
	// they expire on their own.
	ProbeNamePrefix = ReservedComponent + ":probe:"
)

// Reserved reports why a channel or key name is the operator's or the
// logger's and not a Strategy's to declare, or "" when it is free.
func Reserved(name string) string {
	switch {
	case strings.HasPrefix(name, ReservedComponent+":"):
		return "the " + ReservedComponent + ": component is reserved for the operator"
	case name == KeyChannelStats:
		return KeyChannelStats + " is reserved for the event logger's channel stats"
	}
	return ""
}

// Channel is one pub/sub channel of the catalog.
type Channel struct {
	// Name is {component}:{event_type}, without the prefix.
	Name string `json:"name"`
	// Publisher is the component that publishes on the channel.
	Publisher string `json:"publisher,omitempty"`
	// Subscribers are the components of the standard that subscribe to it.
	Subscribers []string `json:"subscribers,omitempty"`
	// MinSubscribers is how many subscribers the channel needs to be
	// healthy. default: len(Subscribers), plus one for the event logger on
	// every channel it listens to.
	MinSubscribers int `json:"minSubscribers"`
	// MaxSilence is how long the channel may stay without a message.
	// default: 0, silence is never unhealthy.
	MaxSilence Duration `json:"maxSilence,omitempty"`
	// MaxLag is the highest p99 lag (from an event's timestamp to the
	// event logger receiving it) over the health window before the channel
	// is Lagging. default: 0, lag is never unhealthy. Left out of the JSON
	// when unset, so that a catalog without it has the bytes (and the pods
	// the config hash) it had before the field existed.
	MaxLag Duration `json:"maxLag,omitzero"`
	// MaxInvalidRatio is the share of invalid messages over the health
	// window above which the channel is unhealthy (InvalidMessages); 0
	// allows none. default: nil, DefaultMaxInvalidRatio.
	MaxInvalidRatio *float64 `json:"maxInvalidRatio,omitempty"`
}

// DefaultMaxInvalidRatio is a channel's MaxInvalidRatio when none is set:
// one message in ten may be skipped as invalid before the channel is
// unhealthy.
const DefaultMaxInvalidRatio = 0.1

// InvalidRatioLimit is the channel's MaxInvalidRatio, or the default.
func (c Channel) InvalidRatioLimit() float64 {
	if c.MaxInvalidRatio != nil {
		return *c.MaxInvalidRatio
	}
	return DefaultMaxInvalidRatio
}

// Publisher returns the component that publishes on a channel: the
// catalog's publisher, or for a channel the catalog does not know (or
// gives no publisher), the channel's {component} part.
func (c *Catalog) Publisher(channel string) string {
	for i := range c.Channels {
		if c.Channels[i].Name == channel && c.Channels[i].Publisher != "" {
			return c.Channels[i].Publisher
		}
	}
	component, _ := SplitName(channel)
	return component
}

// SplitName splits a channel or key name into its {component} and its
// {event_type} or {data_type}. A name without a colon is all component.
func SplitName(name string) (component, kind string) {
	if i := strings.IndexByte(name, ':'); i >= 0 {
		return name[:i], name[i+1:]
	}
	return name, ""
}

// EventType is the {event_type} of a channel name: "updated" for
// "position:updated".
func EventType(channel string) string {
	_, t := SplitName(channel)
	return t
}

// Key is one state key of the catalog.
type Key struct {
	// Name is {component}:{data_type}, without the prefix.
	Name string `json:"name"`
	// Writer is the component that writes the key.
	Writer string `json:"writer,omitempty"`
	// TTL is the key's TTL policy. default: 0, persistent.
	TTL Duration `json:"ttl,omitempty"`
	// MaxAge is how old the value's timestamp may be. default: 0, unchecked.
	MaxAge Duration `json:"maxAge,omitempty"`
}

// Persistent reports whether the policy keeps the key without expiry.
func (k Key) Persistent() bool { return k.TTL.Duration <= 0 }

// Catalog is what a strategy's components agree on: channels, keys, TTL
// policies, the key prefix and the mode. The operator writes it as JSON into
// a ConfigMap and mounts it in every pod of the Strategy (the file named by
// STRATOPS_CATALOG_FILE); the event logger and the engine read it from
// there.
type Catalog struct {
	// Mode is Backtest or Live.
	Mode Mode `json:"mode"`
	// KeyPrefix is prepended to every channel and key name.
	KeyPrefix string `json:"keyPrefix,omitempty"`
	// Channels of the strategy.
	Channels []Channel `json:"channels"`
	// Keys of the strategy.
	Keys []Key `json:"keys"`
}

// Duration is a time.Duration that reads and writes JSON as "1h30m".
type Duration struct{ time.Duration }

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"1h\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// IsZero lets omitempty-aware encoders skip an unset duration.
func (d Duration) IsZero() bool { return d.Duration == 0 }

// Hour and Day are the standard's TTL policies.
const (
	hourly  = time.Hour
	history = 24 * time.Hour
)

// Standard returns the standard's full catalog for a mode: 6 channels and
// 9 keys, with the TTL policies of the standard. Each call returns a new
// value that the caller may change.
func Standard(mode Mode) Catalog {
	ch := func(name, pub string, subs ...string) Channel {
		return Channel{Name: name, Publisher: pub, Subscribers: subs}
	}
	key := func(name, writer string, ttl time.Duration) Key {
		return Key{Name: name, Writer: writer, TTL: Duration{ttl}}
	}
	c := Catalog{
		Mode: mode,
		Channels: []Channel{
			ch("position:updated", ComponentPositionMonitor, ComponentExposureMonitor),
			ch("exposure:calculated", ComponentExposureMonitor, ComponentRiskMonitor),
			ch("risk:calculated", ComponentRiskMonitor, ComponentPnLCalculator, ComponentStrategyManager),
			ch("pnl:calculated", ComponentPnLCalculator),
			ch("strategy:instructions", ComponentStrategyManager),
			ch(ChannelEventsLogged, ComponentEventLogger),
		},
		Keys: []Key{
			key("position:snapshot", ComponentPositionMonitor, hourly),
			key("exposure:current", ComponentExposureMonitor, hourly),
			key("risk:current", ComponentRiskMonitor, hourly),
			key("pnl:current", ComponentPnLCalculator, hourly),
			key("strategy:rebalancing", ComponentStrategyManager, hourly),
			key(KeyEventsHistory, ComponentEventLogger, history),
			key("pnl:hourly_series", ComponentPnLCalculator, history),
			key("config:strategy", "", 0),
			key("config:initial_state", "", 0),
		},
	}
	for i := range c.Channels {
		c.Channels[i].MinSubscribers = DefaultMinSubscribers(c.Channels[i])
	}
	return c
}

// DefaultMinSubscribers is the subscriber count a channel needs by default:
// its subscribers in the standard, plus the event logger, which listens to
// every channel but its own output.
func DefaultMinSubscribers(c Channel) int {
	n := len(c.Subscribers)
	if c.Name != ChannelEventsLogged {
		n++
	}
	return n
}

// StandardChannel returns the standard's channel of that name.
func StandardChannel(name string) (Channel, bool) {
	for _, c := range Standard(ModeBacktest).Channels {
		if c.Name == name {
			return c, true
		}
	}
	return Channel{}, false
}

// StandardKey returns the standard's key of that name.
func StandardKey(name string) (Key, bool) {
	for _, k := range Standard(ModeBacktest).Keys {
		if k.Name == name {
			return k, true
		}
	}
	return Key{}, false
}

// ChannelName is the channel's name in Redis: the prefix, then the name.
func (c *Catalog) ChannelName(name string) string { return c.KeyPrefix + name }

// KeyName is the key's name in Redis: the prefix, then the name.
func (c *Catalog) KeyName(name string) string { return c.KeyPrefix + name }

// Key returns the catalog's key of that name.
func (c *Catalog) Key(name string) (Key, bool) {
	for _, k := range c.Keys {
		if k.Name == name {
			return k, true
		}
	}
	return Key{}, false
}

// Channel returns the catalog's channel of that name.
func (c *Catalog) Channel(name string) (Channel, bool) {
	for _, ch := range c.Channels {
		if ch.Name == name {
			return ch, true
		}
	}
	return Channel{}, false
}

// Validate reports every way the catalog breaks the standard, joined.
func (c *Catalog) Validate() error {
	var errs []error
	if c.Mode != ModeBacktest && c.Mode != ModeLive {
		errs = append(errs, fmt.Errorf("mode %q must be Backtest or Live", c.Mode))
	}
	if strings.IndexFunc(c.KeyPrefix, unicode.IsSpace) >= 0 {
		errs = append(errs, fmt.Errorf("keyPrefix %q must not contain whitespace", c.KeyPrefix))
	}
	seen := map[string]bool{}
	for i, ch := range c.Channels {
		if !NamePattern.MatchString(ch.Name) {
			errs = append(errs, fmt.Errorf("channels[%d].name %q must match {component}:{event_type} (%s)", i, ch.Name, NamePattern))
		}
		if seen[ch.Name] {
			errs = append(errs, fmt.Errorf("channels[%d].name %q is listed twice", i, ch.Name))
		}
		seen[ch.Name] = true
		if ch.MinSubscribers < 0 {
			errs = append(errs, fmt.Errorf("channels[%d].minSubscribers must not be negative", i))
		}
		if r := Reserved(ch.Name); r != "" {
			errs = append(errs, fmt.Errorf("channels[%d].name %q: %s", i, ch.Name, r))
		}
		if ch.MaxSilence.Duration < 0 {
			errs = append(errs, fmt.Errorf("channels[%d].maxSilence must not be negative", i))
		}
		if ch.MaxLag.Duration < 0 {
			errs = append(errs, fmt.Errorf("channels[%d].maxLag must not be negative", i))
		}
		if r := ch.MaxInvalidRatio; r != nil && (*r < 0 || *r > 1) {
			errs = append(errs, fmt.Errorf("channels[%d].maxInvalidRatio %v must be between 0 and 1", i, *r))
		}
	}
	seen = map[string]bool{}
	for i, k := range c.Keys {
		if !NamePattern.MatchString(k.Name) {
			errs = append(errs, fmt.Errorf("keys[%d].name %q must match {component}:{data_type} (%s)", i, k.Name, NamePattern))
		}
		if seen[k.Name] {
			errs = append(errs, fmt.Errorf("keys[%d].name %q is listed twice", i, k.Name))
		}
		seen[k.Name] = true
		if r := Reserved(k.Name); r != "" {
			errs = append(errs, fmt.Errorf("keys[%d].name %q: %s", i, k.Name, r))
		}
		if k.TTL.Duration < 0 || (k.TTL.Duration > 0 && k.TTL.Duration < time.Second) {
			errs = append(errs, fmt.Errorf("keys[%d].ttl %s must be at least 1s, or 0 for persistent", i, k.TTL))
		}
		if k.MaxAge.Duration < 0 {
			errs = append(errs, fmt.Errorf("keys[%d].maxAge must not be negative", i))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("messaging: invalid catalog: %w", errors.Join(errs...))
	}
	return nil
}

// Marshal encodes the catalog as the JSON the ConfigMap carries. The output
// is stable for equal catalogs, so its hash can roll pods on a change.
func (c *Catalog) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("messaging: encode catalog: %w", err)
	}
	return buf.Bytes(), nil
}

// ParseCatalog decodes and validates catalog JSON. Unknown fields are an
// error, so that a typo in a hand-written catalog is not silently ignored.
func ParseCatalog(data []byte) (Catalog, error) {
	var c Catalog
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Catalog{}, fmt.Errorf("messaging: decode catalog: %w", err)
	}
	if err := c.Validate(); err != nil {
		return Catalog{}, err
	}
	return c, nil
}

// LoadCatalog reads a catalog file; an empty path gives the standard's
// catalog for the mode.
func LoadCatalog(path string, mode Mode) (Catalog, error) {
	if path == "" {
		return Standard(mode), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Catalog{}, fmt.Errorf("messaging: read catalog: %w", err)
	}
	return ParseCatalog(data)
}

// HistoryTTL is the standard's TTL of events:history: 24 hours.
const HistoryTTL = history
