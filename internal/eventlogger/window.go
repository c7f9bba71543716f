package eventlogger

import (
	"math"
	"sync"
	"time"

	"github.com/stratops/stratops/internal/eventlog"
	"github.com/stratops/stratops/pkg/messaging"
)

// window keeps what each channel did over the last health window: valid
// and invalid counts and a lag histogram, in slots so that old traffic
// leaves the window a slot at a time. It answers "how late is this hop
// now, and how much of its traffic is bad", where the running counters
// only say "how much, ever".
type window struct {
	length time.Duration
	slot   time.Duration

	mu    sync.Mutex
	slots [windowSlots]windowSlot
}

const windowSlots = 12

type windowSlot struct {
	start    time.Time // zero: unused
	channels map[string]*slotCounts
}

type slotCounts struct {
	valid, invalid int64
	lag            [lagBuckets]uint32
	lagSamples     int64
}

// Lag buckets: four per doubling from 50µs, so a quantile is read within
// 19 % of its value; the last bucket holds everything from about 14 min.
const (
	lagBuckets   = 96
	lagBase      = 50 * time.Microsecond
	lagPerDouble = 4
)

func lagBucket(d time.Duration) int {
	if d <= lagBase {
		return 0
	}
	i := int(math.Ceil(math.Log2(float64(d)/float64(lagBase)) * lagPerDouble))
	return min(i, lagBuckets-1)
}

// lagBucketBound is the upper bound of bucket i.
func lagBucketBound(i int) time.Duration {
	return time.Duration(float64(lagBase) * math.Exp2(float64(i)/lagPerDouble))
}

func newWindow(length time.Duration) *window {
	return &window{length: length, slot: max(length/windowSlots, time.Millisecond)}
}

// at returns the slot of now, resetting it when it held an older slot.
func (w *window) at(now time.Time) *windowSlot {
	start := now.Truncate(w.slot)
	i := int(start.UnixNano()/int64(w.slot)) % windowSlots
	s := &w.slots[i]
	if !s.start.Equal(start) {
		*s = windowSlot{start: start, channels: map[string]*slotCounts{}}
	}
	return s
}

func (w *window) counts(channel string, now time.Time) *slotCounts {
	s := w.at(now)
	c := s.channels[channel]
	if c == nil {
		c = &slotCounts{}
		s.channels[channel] = c
	}
	return c
}

// valid counts a logged event; lag < 0 means it had no usable timestamp.
func (w *window) valid(channel string, now time.Time, lag time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.counts(channel, now).count(lag)
}

// validAll is valid for each of events received at now, under one lock:
// the lag of a nonconforming one (its timestamp is not its own) is not
// counted.
func (w *window) validAll(channel string, now time.Time, events []messaging.Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.counts(channel, now)
	for _, e := range events {
		lag := time.Duration(-1)
		if e.Nonconforming == "" {
			lag = max(now.Sub(e.Timestamp), 0)
		}
		c.count(lag)
	}
}

// count counts a valid message, and its lag unless negative.
func (c *slotCounts) count(lag time.Duration) {
	c.valid++
	if lag >= 0 {
		c.lag[lagBucket(lag)]++
		c.lagSamples++
	}
}

func (w *window) invalid(channel string, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.counts(channel, now).invalid++
}

// stats sums the slots within the window ending at now, per channel.
func (w *window) stats(now time.Time) map[string]eventlog.WindowStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	sums := map[string]*slotCounts{}
	oldest := now.Add(-w.length)
	for i := range w.slots {
		s := &w.slots[i]
		if s.start.IsZero() || !s.start.Add(w.slot).After(oldest) || s.start.After(now) {
			continue
		}
		for ch, c := range s.channels {
			sum := sums[ch]
			if sum == nil {
				sum = &slotCounts{}
				sums[ch] = sum
			}
			sum.valid += c.valid
			sum.invalid += c.invalid
			sum.lagSamples += c.lagSamples
			for b, n := range c.lag {
				sum.lag[b] += n
			}
		}
	}
	out := make(map[string]eventlog.WindowStats, len(sums))
	for ch, c := range sums {
		out[ch] = eventlog.WindowStats{
			Messages: c.valid, Invalid: c.invalid, LagSamples: c.lagSamples,
			LagP50: c.quantile(0.50), LagP99: c.quantile(0.99),
		}
	}
	return out
}

// quantile reads q from the histogram: the upper bound of the bucket that
// holds it, so a reported lag is never below the true one by more than a
// bucket.
func (c *slotCounts) quantile(q float64) time.Duration {
	if c.lagSamples == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(c.lagSamples)))
	var seen int64
	for i, n := range c.lag {
		seen += int64(n)
		if seen >= rank {
			return lagBucketBound(i)
		}
	}
	return lagBucketBound(lagBuckets - 1)
}
