package eventlogger

import (
	"context"
	"errors"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/stratops/stratops/internal/eventlog"
	"github.com/stratops/stratops/pkg/messaging"
)

// Retry is the writer's policy when a write to the bus fails: exponential
// from 100 ms, each delay drawn within ±50% of its nominal value, so that
// the loggers of many Strategies that lost a shared Redis together do not
// all retry at the same instants when it comes back. The nominal delay
// stops at 3.2 s, so no wait exceeds 4.8 s: a logger resumes within 5 s of
// Redis's return.
func Retry() backoff.BackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval = 100*time.Millisecond, 3200*time.Millisecond
	b.Multiplier, b.RandomizationFactor = 2, 0.5
	b.Reset()
	return b
}

// writer writes what waits to the history, in order, batch by batch:
// history first, then the notifications. A failed batch stays at the head
// and is retried under the retry policy; before a retry, entries that did
// reach the history (the reply was lost) are taken off it, and only their
// notifications are sent, so that neither is written twice. A failure of
// the notifications alone is not retried (that could send them twice): it
// is counted. A permanent error (NOPERM, WRONGTYPE, OOM, READONLY) makes
// the logger not ready, with the reason, until a write succeeds.
type writer struct {
	s     *Service
	retry backoff.BackOff
	// failed: the last write failed, so the head of the queue may be in
	// the history already.
	failed bool
	// batch and entries are the slices each batch is taken into and
	// written from, reused (and cleared after each batch): the writer
	// handles one batch at a time, and nothing keeps them past it (a store
	// copies what it keeps). Made anew for each batch, they were a quarter
	// of a burst's allocations.
	batch   []queued
	entries []eventlog.LogEntry
}

// writeLoop runs the writer until stop is closed and nothing waits, or
// ctx ends.
func (s *Service) writeLoop(ctx context.Context, stop <-chan struct{}) {
	// After a restart the spool's first records may be in the history.
	w := &writer{s: s, retry: s.cfg.Retry(), failed: s.replaying.Load()}
	for {
		batch, fromSpool, err := s.nextBatch(w.batch[:0])
		w.batch = batch[:0]
		switch {
		case err != nil:
			s.cfg.Log.Error("Reading the spool", "error", err)
			if !sleep(ctx, time.Second) {
				return
			}
		case len(batch) == 0:
			select {
			case <-s.queue.notify:
			case <-stop:
				if s.Pending() == 0 {
					return
				}
			case <-ctx.Done():
				return
			}
		default:
			ok := w.write(ctx, batch, fromSpool)
			// The reused slices keep no payload past their batch (a
			// failed one is read again from the queue).
			clear(batch)
			clear(w.entries)
			if !ok {
				return
			}
		}
	}
}

// write takes one batch as far as it goes; false when ctx ended.
func (w *writer) write(ctx context.Context, batch []queued, fromSpool bool) bool {
	s := w.s
	if w.failed {
		rest, ok := w.skipLanded(ctx, batch, fromSpool)
		if !ok {
			return w.backOff(ctx)
		}
		if batch = rest; len(batch) == 0 {
			w.failed = false
			return true
		}
	}
	start := time.Now()
	handedOver, err := s.record(ctx, batch, w.entriesOf(batch))
	s.metrics.recordDuration.Observe(time.Since(start).Seconds())
	var ne *eventlog.NotifyError
	switch {
	case handedOver:
		s.metrics.handedOver.Add(float64(len(batch)))
		s.done(batch, fromSpool)
		w.failed = false
	case err == nil || errors.As(err, &ne):
		if ne != nil {
			s.metrics.notifyLost.Add(float64(ne.Events))
			s.cfg.Log.Warn("History written; its events:logged notifications were not all published", "error", err)
		}
		s.done(batch, fromSpool)
		s.noteWritten(w.failed)
		w.failed = false
		s.replaying.Store(false)
		w.retry.Reset()
	default:
		s.metrics.writeErrors.Inc()
		s.noteWriteError(err)
		if !w.failed {
			s.cfg.Log.Error("Writing events to the bus failed; they wait and are retried", "error", err, "pending", s.Pending())
		}
		w.failed = true
		return w.backOff(ctx)
	}
	return true
}

// skipLanded takes off the head of batch what a write whose reply was
// lost did put in the history, sending only its notifications. ok is
// false while the history cannot be read: whether the last try landed is
// unknown, and writing now could write it twice.
func (w *writer) skipLanded(ctx context.Context, batch []queued, fromSpool bool) (rest []queued, ok bool) {
	s := w.s
	ids, err := s.store.RecentIDs(ctx, 2*len(batch)+64)
	if err != nil {
		return batch, false
	}
	n := 0
	for n < len(batch) && ids[batch[n].entry.ID] {
		n++
	}
	if n > 0 {
		// Through the lease, a write that landed sent its notifications
		// in the same step; a plain one sends them after.
		if s.lease.leaser == nil {
			if err := s.store.Notify(ctx, w.entriesOf(batch[:n])); err != nil {
				s.metrics.notifyLost.Add(float64(n))
			}
		}
		s.done(batch[:n], fromSpool)
	}
	return batch[n:], true
}

// backOff waits the retry policy's next delay; false when ctx ended.
func (w *writer) backOff(ctx context.Context) bool {
	return sleep(ctx, w.retry.NextBackOff())
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// record writes a batch to the history. With a lease, channel events are
// written only by the leader, fenced: a replica that does not hold the
// lease (any more) leaves them to the one that does, which heard them too
// (handedOver). Its own events are written whoever leads.
func (s *Service) record(ctx context.Context, batch []queued, entries []eventlog.LogEntry) (handedOver bool, err error) {
	l := &s.lease
	switch {
	case l.leaser == nil:
		return false, s.store.Record(ctx, entries)
	case batch[0].own:
		return false, l.leaser.RecordFenced(ctx, entries, "")
	case !l.leader.Load():
		return true, nil
	}
	err = l.leaser.RecordFenced(ctx, entries, l.value)
	if !errors.Is(err, eventlog.ErrFenced) {
		return false, err
	}
	// The lease is not ours on this Redis any more. Lapsed (a failover
	// promoted a replica after the lease's TTL ran out): take it back and
	// write; only another holder, which heard these events too, takes
	// them over.
	held, holder, aerr := l.leaser.AcquireLease(ctx, l.value, s.cfg.LeaseTTL)
	switch {
	case aerr != nil:
		return false, aerr
	case held:
		return false, l.leaser.RecordFenced(ctx, entries, l.value)
	}
	if l.leader.Load() {
		s.stepDown(holder)
	}
	return true, nil
}

// nextBatch is the oldest events waiting, at most BatchSize, appended to
// b: from the queue's cache, or read back from the spool when the cache
// has spilled.
func (s *Service) nextBatch(b []queued) ([]queued, bool, error) {
	b, spilled, from := s.queue.next(b, s.cfg.BatchSize)
	if !spilled {
		return b, false, nil
	}
	recs, err := s.queue.spool.ReadFrom(from, s.cfg.BatchSize)
	if err != nil {
		return b, true, err
	}
	for _, r := range recs {
		e, err := s.cfg.Catalog.DecodeEvent(r.Channel, r.Payload, messaging.DecodeOptions{MaxBytes: max(s.cfg.MaxMessageBytes, 1<<20), Received: r.LoggedAt})
		if err != nil {
			// It was decoded when it was accepted; a record that no longer
			// decodes (a catalog change) is kept as it came.
			e = messaging.Event{Channel: r.Channel, Timestamp: r.LoggedAt, Payload: r.Payload, Nonconforming: "spool_replay"}
		}
		b = append(b, queued{seq: r.Seq, own: r.HTTP, entry: eventlog.LogEntry{ID: r.ID, Channel: r.Channel, LoggedAt: r.LoggedAt, Event: e}})
	}
	return sameSource(b), true, nil
}

// done takes a batch the history has off the queue.
func (s *Service) done(b []queued, fromSpool bool) {
	left, err := s.queue.done(b, fromSpool)
	if err != nil {
		s.cfg.Log.Error("Marking the spool", "error", err)
	}
	if sp := s.queue.spool; sp != nil {
		s.metrics.spoolBytes.Set(float64(sp.Bytes()))
	}
	s.metrics.pending.Set(float64(left))
}

// entriesOf is a batch's log entries, in w.entries.
func (w *writer) entriesOf(b []queued) []eventlog.LogEntry {
	out := w.entries[:0]
	for _, q := range b {
		out = append(out, q.entry)
	}
	w.entries = out
	return out
}
