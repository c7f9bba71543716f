package eventlogger

import (
	"errors"
	"slices"
	"sync"

	"github.com/stratops/stratops/internal/eventlog"
)

// ErrQueueFull is returned when the pending queue cannot take an event.
var ErrQueueFull = errors.New("eventlogger: pending queue is full")

// queued is an accepted event waiting for the history, with its place in
// the spool (0 without one).
type queued struct {
	entry eventlog.LogEntry
	seq   uint64
	// own: only this replica has it (posted to its API, or its own gap
	// event), so it is written whoever holds the lease.
	own bool
}

// queue is what waits for the history, in order: the spool on disk when
// there is one, with an in-memory cache of it; the cache alone without
// one. It owns its lock; nothing else touches its fields.
type queue struct {
	limit int

	mu sync.Mutex
	// chunks are the cache of the spool, in order: the entries of each
	// add as they were added, never copied on the way in (growing one
	// array of entries through a burst, copying it each time it doubled,
	// was a fifth of the logger's CPU); the first head entries of the
	// first chunk are taken. cachedN counts the entries they hold.
	chunks  [][]queued
	head    int
	cachedN int
	// With a spool, the cache may spill: from spillNext on, what waits is
	// in the spool only, and the writer reads it from there; lastSeq is
	// the spool's newest record.
	spool     *Spool
	spilled   bool
	spillNext uint64
	lastSeq   uint64
	backlog   int // events waiting, cached or spilled
	// notify wakes the writer when something was added.
	notify chan struct{}
}

func newQueue(limit int) *queue {
	return &queue{limit: limit, notify: make(chan struct{}, 1)}
}

// useSpool puts the queue on a spool; replay is what an earlier run left
// there, which the writer reads first.
func (q *queue) useSpool(sp *Spool, replay []spoolRecord) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.spool = sp
	if len(replay) > 0 {
		q.spilled, q.spillNext = true, replay[0].Seq
		q.lastSeq = replay[len(replay)-1].Seq
		q.backlog = len(replay)
		return
	}
	q.lastSeq = sp.next - 1
}

// add puts entries in the spool, and in the cache while it has room and
// has not spilled; without a spool, in the cache only. then runs under the
// queue's lock with the outcome, so that what it writes comes out in
// queue order. It returns the backlog after the add.
func (q *queue) add(entries []queued, then func(error)) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	err := q.addLocked(entries)
	then(err)
	if err == nil {
		select {
		case q.notify <- struct{}{}:
		default:
		}
	}
	return q.backlog, err
}

func (q *queue) addLocked(entries []queued) error {
	if q.spool == nil {
		if q.cached()+len(entries) > q.limit {
			return ErrQueueFull
		}
		q.appendCache(entries)
		q.backlog = q.cached()
		return nil
	}
	recs := make([]spoolRecord, len(entries))
	for i, e := range entries {
		recs[i] = spoolRecord{HTTP: e.own, ID: e.entry.ID, Channel: e.entry.Channel, LoggedAt: e.entry.LoggedAt, Payload: e.entry.Event.Payload}
	}
	last, err := q.spool.Append(recs)
	if err != nil {
		return err
	}
	for i := range entries {
		entries[i].seq = recs[i].Seq
	}
	q.lastSeq = last
	q.backlog += len(entries)
	if !q.spilled && q.cached()+len(entries) > q.limit {
		q.spilled, q.spillNext = true, entries[0].seq
	}
	if !q.spilled {
		q.appendCache(entries)
	}
	return nil
}

// cached is how many events the cache holds.
func (q *queue) cached() int { return q.cachedN }

// appendCache adds entries to the cache, as a chunk of their own: the
// queue keeps them from here on (add's caller reads them no more).
func (q *queue) appendCache(entries []queued) {
	if len(entries) == 0 {
		return
	}
	q.chunks = append(q.chunks, entries)
	q.cachedN += len(entries)
}

// takeCache takes the first n cached entries off, clearing them (their
// payloads are written) and letting go of the chunks emptied.
func (q *queue) takeCache(n int) {
	q.cachedN -= n
	for n > 0 {
		c := q.chunks[0]
		k := min(len(c)-q.head, n)
		clear(c[q.head : q.head+k])
		q.head += k
		n -= k
		if q.head == len(c) {
			q.chunks[0] = nil
			q.chunks, q.head = q.chunks[1:], 0
		}
	}
	if len(q.chunks) == 0 {
		q.chunks = nil
	}
}

// sync makes what was added durable (one fsync for all of it).
func (q *queue) sync() error { return q.syncUpTo(q.added()) }

// added is the sequence number of the last record added.
func (q *queue) added() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.lastSeq
}

// syncUpTo makes the records up to seq durable: on disk, or in the
// history.
func (q *queue) syncUpTo(seq uint64) error {
	if q.spool == nil {
		return nil
	}
	return q.spool.Sync(seq)
}

// next is the oldest events waiting, at most n, in b (its room reused):
// from the cache, or, when the cache has spilled, the records to read
// back from the spool (from).
func (q *queue) next(b []queued, n int) (cached []queued, spilled bool, from uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.cached() > 0 || !q.spilled {
		k := min(q.cached(), n)
		if k == 0 {
			return b, false, 0
		}
		b = slices.Grow(b[:0], k)
		for i, from := 0, q.head; len(b) < k; i, from = i+1, 0 {
			c := q.chunks[i][from:]
			b = append(b, c[:min(len(c), k-len(b))]...)
		}
		return sameSource(b), false, 0
	}
	return b, true, q.spillNext
}

// sameSource cuts a batch where its entries change from channel events to
// this replica's own or back: the two are written differently.
func sameSource(b []queued) []queued {
	for i := 1; i < len(b); i++ {
		if b[i].own != b[0].own {
			return b[:i]
		}
	}
	return b
}

// done (after the history has them) takes a batch off the queue: off the
// cache, or past it in the spool, which may then free them. It returns the
// backlog left.
func (q *queue) done(b []queued, fromSpool bool) (int, error) {
	if len(b) == 0 {
		return q.len(), nil
	}
	q.mu.Lock()
	if fromSpool {
		q.spillNext = b[len(b)-1].seq + 1
		if q.spillNext > q.lastSeq {
			// Caught up: what comes next goes through the cache again.
			q.spilled = false
		}
	} else {
		q.takeCache(len(b))
	}
	q.backlog -= len(b)
	left := q.backlog
	q.mu.Unlock()
	if q.spool != nil {
		return left, q.spool.Ack(b[len(b)-1].seq)
	}
	return left, nil
}

// len is how many events wait.
func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.backlog
}
