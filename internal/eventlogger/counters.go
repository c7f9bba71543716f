package eventlogger

import (
	"context"
	"sync"
	"time"

	"github.com/stratops/stratops/internal/eventlog"
	"github.com/stratops/stratops/pkg/messaging"
)

// counters are the per-channel stats gathered since the last write to
// the bus's stats hash, and the health window. They own their lock.
type counters struct {
	mu    sync.Mutex
	delta map[string]eventlog.ChannelStats
	// windowShown is whether the last write carried traffic in the
	// window: an empty window is written once, then left alone.
	windowShown bool
	window      *window
}

func newCounters(healthWindow time.Duration) *counters {
	return &counters{delta: map[string]eventlog.ChannelStats{}, window: newWindow(healthWindow)}
}

// accepted counts events logged on a channel at now; dropped of them
// found no room for the history; nonconforming had no usable timestamp.
func (c *counters) accepted(channel string, events []messaging.Event, dropped bool, now time.Time) {
	c.mu.Lock()
	st := c.delta[channel]
	if dropped {
		st.Dropped += int64(len(events))
	}
	st.Messages += int64(len(events))
	for _, e := range events {
		if e.Nonconforming != "" {
			st.Nonconforming++
		}
	}
	st.LastMessageTime = now
	c.delta[channel] = st
	c.mu.Unlock()
	c.window.validAll(channel, now, events)
}

// invalid counts a message skipped on a channel.
func (c *counters) invalid(channel string, now time.Time) {
	c.window.invalid(channel, now)
	c.mu.Lock()
	st := c.delta[channel]
	st.Invalid++
	c.delta[channel] = st
	c.mu.Unlock()
}

// gap counts a subscription gap that ended at end on channels.
func (c *counters) gap(channels []string, end time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ch := range channels {
		st := c.delta[ch]
		st.Gaps++
		st.LastGapTime = end
		c.delta[ch] = st
	}
}

// flushOptions say what a stats write carries besides the counters.
type flushOptions struct {
	// subscribed: the logger listens, so the write is also its heartbeat.
	subscribed bool
	// leader: only the leader writes the window.
	leader   bool
	channels []messaging.Channel
	length   time.Duration
}

// flush writes the counters gathered since the last flush, and the window
// as it is now; on failure the counters are kept and added to the next.
func (c *counters) flush(ctx context.Context, write func(context.Context, eventlog.StatsUpdate) error, o flushOptions) error {
	now := time.Now().UTC()
	windows := c.window.stats(now)
	c.mu.Lock()
	delta := c.delta
	c.delta = map[string]eventlog.ChannelStats{}
	showWindow := (len(windows) > 0 || c.windowShown) && o.leader
	c.mu.Unlock()
	u := eventlog.StatsUpdate{Counters: delta, WindowLength: o.length, At: now}
	if o.subscribed {
		// The heartbeat a logger starting after this one reads: the time
		// from it to that one's subscription is a gap.
		u.SubscribedAt = now
	} else if len(delta) == 0 && !showWindow {
		return nil
	}
	if showWindow {
		// Every channel of the catalog, so that one that went quiet shows
		// an empty window rather than its last busy one.
		u.Windows = make(map[string]eventlog.WindowStats, len(o.channels))
		for _, ch := range o.channels {
			u.Windows[ch.Name] = windows[ch.Name]
		}
		for ch, w := range windows {
			u.Windows[ch] = w
		}
	}
	if err := write(ctx, u); err != nil {
		c.mu.Lock()
		for ch, d := range delta {
			cur := c.delta[ch]
			cur.Add(d)
			c.delta[ch] = cur
		}
		c.mu.Unlock()
		return err
	}
	c.mu.Lock()
	c.windowShown = len(windows) > 0
	c.mu.Unlock()
	return nil
}
