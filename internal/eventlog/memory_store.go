package eventlog

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/stratops/stratops/pkg/messaging"
)

// MemoryStore is the event log of a backtest on the in-memory bus: the
// history in the process's memory, with the standard's TTL, and the
// notifications published on the bus.
type MemoryStore struct {
	bus        *messaging.MemoryBus
	clock      messaging.Clock
	historyTTL time.Duration
	maxLen     int

	mu      sync.Mutex
	history []LogEntry
	// dropped counts the entries trimmed from the front of history, so
	// that a history cursor names the same entry after a trim.
	dropped int
	histExp time.Time
}

// NewMemoryStore keeps the event log in memory, publishing its
// notifications on bus; a nil clock is the wall clock.
func NewMemoryStore(bus *messaging.MemoryBus, clock messaging.Clock) *MemoryStore {
	if clock == nil {
		clock = messaging.WallClock{}
	}
	return &MemoryStore{bus: bus, clock: clock, historyTTL: messaging.HistoryTTL, maxLen: memoryHistoryMaxLen}
}

func (b *MemoryStore) Record(ctx context.Context, entries []LogEntry) error {
	b.mu.Lock()
	now := b.clock.Now()
	if !b.histExp.IsZero() && !now.Before(b.histExp) {
		b.dropped += len(b.history)
		b.history = nil
	}
	b.history = append(b.history, entries...)
	if over := len(b.history) - b.maxLen; over > 0 {
		b.dropped += over
		b.history = append([]LogEntry(nil), b.history[over:]...)
	}
	b.histExp = now.Add(b.historyTTL)
	b.mu.Unlock()
	return b.Notify(ctx, entries)
}

// Notify publishes the events:logged notification of entries already in
// the history.
func (b *MemoryStore) Notify(ctx context.Context, entries []LogEntry) error {
	for i, e := range entries {
		if err := b.bus.Publish(ctx, messaging.ChannelEventsLogged, notification(e)); err != nil {
			return &NotifyError{Events: len(entries) - i, Err: err}
		}
	}
	return nil
}

// memoryHistoryMaxLen bounds the in-memory history of a backtest.
const memoryHistoryMaxLen = 100_000

func (b *MemoryStore) RecentIDs(_ context.Context, n int) (map[string]bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ids := map[string]bool{}
	for i := len(b.history) - 1; i >= 0 && len(ids) < n; i-- {
		ids[b.history[i].ID] = true
	}
	return ids, nil
}

// History pages with positions as cursors: the number of entries logged
// before the page, counting those trimmed since.
func (b *MemoryStore) History(_ context.Context, n int, before string) ([]LogEntry, string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.histExp.IsZero() && !b.clock.Now().Before(b.histExp) {
		return nil, "", nil
	}
	end := len(b.history)
	if before != "" {
		c, err := strconv.Atoi(before)
		if err != nil || c < 0 || c-b.dropped > len(b.history) {
			return nil, "", ErrBadCursor
		}
		end = max(c-b.dropped, 0)
	}
	start := max(end-n, 0)
	next := ""
	if start > 0 {
		next = strconv.Itoa(b.dropped + start)
	}
	return append([]LogEntry(nil), b.history[start:end]...), next, nil
}

// WriteStats does nothing: the stats hash is for the operator, which reads
// it from Redis and never from a process's memory; a logger on memory
// reports the same counters in its metrics.
func (b *MemoryStore) WriteStats(context.Context, StatsUpdate) error { return nil }
