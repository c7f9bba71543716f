package eventlog

import (
	"strconv"
	"strings"
	"time"
)

// ChannelStats are the event logger's running counters for one channel.
type ChannelStats struct {
	// Messages logged (nonconforming ones included).
	Messages int64
	// Invalid messages skipped.
	Invalid int64
	// Nonconforming messages logged without a usable timestamp.
	Nonconforming int64
	// LastMessageTime is when the logger last logged a message.
	LastMessageTime time.Time
	// Dropped messages the logger received and wrote to its output but
	// could not keep for the history (its spool was full).
	Dropped int64
	// Gaps is how many times the logger's subscription to the channel was
	// down: messages published then may be lost. LastGapTime is when the
	// last one ended.
	Gaps        int64
	LastGapTime time.Time
}

// Add adds another set of counters to these; the last message time is the
// later of the two.
func (c *ChannelStats) Add(o ChannelStats) {
	c.Messages += o.Messages
	c.Invalid += o.Invalid
	c.Nonconforming += o.Nonconforming
	c.Dropped += o.Dropped
	c.Gaps += o.Gaps
	if o.LastMessageTime.After(c.LastMessageTime) {
		c.LastMessageTime = o.LastMessageTime
	}
	if o.LastGapTime.After(c.LastGapTime) {
		c.LastGapTime = o.LastGapTime
	}
}

// WindowStats are what one channel did over the health window: the
// recent past that health verdicts are about, where the running counters
// cover the logger's whole life.
type WindowStats struct {
	// Messages logged and Invalid skipped in the window.
	Messages, Invalid int64
	// LagSamples is how many events with a usable timestamp the lag
	// quantiles come from; zero when none.
	LagSamples int64
	// LagP50 and LagP99 are quantiles of the time from an event's
	// timestamp to the logger receiving it.
	LagP50, LagP99 time.Duration
}

// InvalidRatio is the share of the window's messages that were invalid.
func (w WindowStats) InvalidRatio() float64 {
	if total := w.Messages + w.Invalid; total > 0 {
		return float64(w.Invalid) / float64(total)
	}
	return 0
}

// StatsUpdate is one write of the logger to the stats hash: counters to
// add, and the window as it is now.
type StatsUpdate struct {
	// Counters to add, by channel.
	Counters map[string]ChannelStats
	// Windows replace the previous window, by channel; nil leaves it.
	Windows map[string]WindowStats
	// WindowLength is the window's length; At is when it ends.
	WindowLength time.Duration
	At           time.Time
	// SubscribedAt, when set, is when the logger was last known
	// subscribed: a logger that starts reads it to report the gap since.
	SubscribedAt time.Time
}

// Stats is the stats hash as the operator reads it.
type Stats struct {
	Channels map[string]ChannelStats
	Windows  map[string]WindowStats
	// WindowLength and WindowAt say which window Windows describe; a window
	// whose end is long past is the trace of a logger that stopped.
	WindowLength time.Duration
	WindowAt     time.Time
	// Owner is the UID of the Strategy the stats belong to (the operator
	// resets the hash for a new owner of the prefix).
	Owner string
}

// Window returns a channel's window when the window is current at now
// (it ended within two lengths of now), and false otherwise.
func (s Stats) Window(channel string, now time.Time) (WindowStats, bool) {
	if s.WindowAt.IsZero() || now.Sub(s.WindowAt) > 2*s.WindowLength+10*time.Second {
		return WindowStats{}, false
	}
	w, ok := s.Windows[channel]
	return w, ok
}

// Fields of the stats hash: "<channel>|<stat>", and "_window|<stat>" for
// the window's own fields (channel names always hold a colon, so the two
// never meet).
const (
	statMessages      = "messages"
	statInvalid       = "invalid"
	statNonconforming = "nonconforming"
	statLastMS        = "last_message_ms"
	statDropped       = "dropped"
	statGaps          = "gaps"
	statLastGapMS     = "last_gap_ms"
	statWinMessages   = "window_messages"
	statWinInvalid    = "window_invalid"
	statWinLagSamples = "window_lag_samples"
	statWinLagP50     = "window_lag_p50_us"
	statWinLagP99     = "window_lag_p99_us"
	windowField       = "_window"
	statWinLengthMS   = "length_ms"
	statWinAtMS       = "at_ms"
	// StatsOwnerField holds the owning Strategy's UID.
	StatsOwnerField = "_owner|uid"
	// StatsSubscribedField holds when a logger was last known subscribed
	// (Unix milliseconds).
	StatsSubscribedField = "_logger|subscribed_ms"
)

// statsField is the stats hash field of a channel's stat.
func statsField(channel, stat string) string { return channel + "|" + stat }

// counterFields lists the HINCRBY increments of an update's counters.
func (u StatsUpdate) counterFields() (incr map[string]int64, set map[string]int64) {
	incr, set = map[string]int64{}, map[string]int64{}
	for ch, s := range u.Counters {
		for stat, n := range map[string]int64{statMessages: s.Messages, statInvalid: s.Invalid, statNonconforming: s.Nonconforming, statDropped: s.Dropped, statGaps: s.Gaps} {
			if n != 0 {
				incr[statsField(ch, stat)] = n
			}
		}
		if !s.LastMessageTime.IsZero() {
			set[statsField(ch, statLastMS)] = s.LastMessageTime.UnixMilli()
		}
		if !s.LastGapTime.IsZero() {
			set[statsField(ch, statLastGapMS)] = s.LastGapTime.UnixMilli()
		}
	}
	if !u.SubscribedAt.IsZero() {
		set[StatsSubscribedField] = u.SubscribedAt.UnixMilli()
	}
	if u.Windows != nil {
		for ch, w := range u.Windows {
			set[statsField(ch, statWinMessages)] = w.Messages
			set[statsField(ch, statWinInvalid)] = w.Invalid
			set[statsField(ch, statWinLagSamples)] = w.LagSamples
			set[statsField(ch, statWinLagP50)] = w.LagP50.Microseconds()
			set[statsField(ch, statWinLagP99)] = w.LagP99.Microseconds()
		}
		set[statsField(windowField, statWinLengthMS)] = u.WindowLength.Milliseconds()
		set[statsField(windowField, statWinAtMS)] = u.At.UnixMilli()
	}
	return incr, set
}

// ParseStats reads the stats hash (as HGETALL returns it). Fields it does
// not know are ignored, so an older operator reads a newer logger's hash.
func ParseStats(h map[string]string) Stats {
	out := Stats{Channels: map[string]ChannelStats{}, Windows: map[string]WindowStats{}}
	out.Owner = h[StatsOwnerField]
	for f, v := range h {
		i := strings.LastIndexByte(f, '|')
		if i < 0 {
			continue
		}
		ch, stat := f[:i], f[i+1:]
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			continue
		}
		if ch == windowField {
			switch stat {
			case statWinLengthMS:
				out.WindowLength = time.Duration(n) * time.Millisecond
			case statWinAtMS:
				out.WindowAt = time.UnixMilli(n).UTC()
			}
			continue
		}
		cs, ws := out.Channels[ch], out.Windows[ch]
		switch stat {
		case statMessages:
			cs.Messages = n
		case statInvalid:
			cs.Invalid = n
		case statNonconforming:
			cs.Nonconforming = n
		case statLastMS:
			cs.LastMessageTime = time.UnixMilli(n).UTC()
		case statDropped:
			cs.Dropped = n
		case statGaps:
			cs.Gaps = n
		case statLastGapMS:
			cs.LastGapTime = time.UnixMilli(n).UTC()
		case statWinMessages:
			ws.Messages = n
		case statWinInvalid:
			ws.Invalid = n
		case statWinLagSamples:
			ws.LagSamples = n
		case statWinLagP50:
			ws.LagP50 = time.Duration(n) * time.Microsecond
		case statWinLagP99:
			ws.LagP99 = time.Duration(n) * time.Microsecond
		default:
			continue
		}
		if strings.HasPrefix(stat, "window_") {
			out.Windows[ch] = ws
		} else {
			out.Channels[ch] = cs
		}
	}
	return out
}

// MinHealthWindow is the shortest health window: over fewer seconds a
// handful of messages would decide a channel's health.
const MinHealthWindow = time.Minute

// HealthWindow is the window the event logger keeps for a health check
// interval: the interval, or MinHealthWindow when that is longer.
func HealthWindow(interval time.Duration) time.Duration {
	return max(interval, MinHealthWindow)
}
