package eventlog

import (
	"context"
	"errors"
	"fmt"
)

// Store is where the event logger keeps the event log: Redis, or memory
// for a backtest without it.
type Store interface {
	// Record writes logged events in order: first an entry in the
	// events:history stream for each and the history's TTL, all or none;
	// then, once they are written, a notification on events:logged for
	// each. A *NotifyError says the history was written and the
	// notifications were not: the batch must not be retried.
	Record(ctx context.Context, entries []LogEntry) error
	// Notify publishes the events:logged notifications of entries already
	// in the history (those a failed Record wrote without saying so).
	Notify(ctx context.Context, entries []LogEntry) error
	// RecentIDs returns the IDs of the newest n history entries, so that a
	// batch whose fate is unknown after a failure is not written twice.
	RecentIDs(ctx context.Context, n int) (map[string]bool, error)
	// History returns a page of up to n history entries, oldest first:
	// the newest when before is empty, else those older than the cursor
	// before. next is the cursor of the page of older entries, empty when
	// there are none. A cursor the store did not give is ErrBadCursor.
	History(ctx context.Context, n int, before string) (entries []LogEntry, next string, err error)
	// WriteStats adds the counters of an update to the per-channel stats
	// hash and replaces its window.
	WriteStats(ctx context.Context, u StatsUpdate) error
}

var (
	_ Store = (*RedisStore)(nil)
	_ Store = (*MemoryStore)(nil)
)

// ErrBadCursor is a history cursor that no page of History gave.
var ErrBadCursor = errors.New("eventlog: not a history cursor: pass the \"next\" of a page")

// NotifyError says that a batch's history was written but its events:logged
// notifications were not all published. Retrying would publish some twice;
// the logger counts them as lost instead.
type NotifyError struct {
	Events int
	Err    error
}

func (e *NotifyError) Error() string {
	return fmt.Sprintf("eventlog: history written, %d events:logged notifications not published: %v", e.Events, e.Err)
}
func (e *NotifyError) Unwrap() error { return e.Err }
