package eventlogger

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/stratops/stratops/internal/eventlog"
	"github.com/stratops/stratops/pkg/messaging"
)

// ChannelHTTP is the channel of events posted to /events without one.
const ChannelHTTP = "http"

// ChannelGap is the pseudo-channel of the logger's gap events, and
// EventSubscriptionGap their event type.
const (
	ChannelGap           = "gap"
	EventSubscriptionGap = "subscription_gap"
)

// ErrStopping is returned by Accept once the logger is shutting down.
var ErrStopping = errors.New("eventlogger: shutting down: not accepting events")

// Ingest decodes one message from a channel and logs it, or counts and
// skips it when it is not an event (not JSON, not an object, too large).
// A message that finds the spool (or, without one, the queue) full is
// still written to the output, and counted as dropped from the history.
// It returns the *messaging.InvalidError, ErrSpoolFull or ErrQueueFull.
func (s *Service) Ingest(channel string, payload []byte) error {
	now := time.Now().UTC()
	s.lease.mode.RLock()
	defer s.lease.mode.RUnlock()
	if !s.lease.leader.Load() {
		// A standby keeps what it hears for its window, and logs none.
		s.hold(channel, payload, now)
		return nil
	}
	return s.ingestAt(channel, payload, now)
}

// ingestAll is Ingest of the deliveries received together: decoded one
// by one, and accepted a run of one channel at a time (one lock, one spool
// append, one round of counters for the run).
func (s *Service) ingestAll(ds []messaging.Delivery) {
	now := time.Now().UTC()
	s.lease.mode.RLock()
	defer s.lease.mode.RUnlock()
	if !s.lease.leader.Load() {
		for _, d := range ds {
			s.hold(d.Channel, d.Payload, now)
		}
		return
	}
	// accept copies the events of run: its room is kept for the next
	// deliveries, cleared so that it holds no payload.
	run, channel := s.decoded[:0], ""
	flush := func() {
		if len(run) > 0 {
			_, _ = s.accept(channel, run, now, true)
		}
		clear(run)
		run = run[:0]
	}
	for _, d := range ds {
		if d.Channel != channel {
			flush()
			channel = d.Channel
		}
		e, err := s.cfg.Catalog.DecodeEvent(d.Channel, d.Payload, messaging.DecodeOptions{MaxBytes: s.cfg.MaxMessageBytes, Received: now})
		if err != nil {
			s.countInvalid(d.Channel, err, d.Payload)
			continue
		}
		run = append(run, e)
	}
	flush()
	s.decoded = run
}

// ingestAt is Ingest of a message received at now, by the leader.
func (s *Service) ingestAt(channel string, payload []byte, now time.Time) error {
	e, err := s.cfg.Catalog.DecodeEvent(channel, payload, messaging.DecodeOptions{MaxBytes: s.cfg.MaxMessageBytes, Received: now})
	if err != nil {
		s.countInvalid(channel, err, payload)
		return err
	}
	// A Delivery's payload is the receiver's own (both buses copy), so
	// the queue keeps it without a copy.
	_, err = s.accept(channel, []messaging.Event{e}, now, true)
	return err
}

// Accept logs events received at now, in order: one line each to the
// output, then into the spool and the queue for the bus. All of them are
// taken, or none when there is no room (ErrSpoolFull, or ErrQueueFull
// without a spool); once it returns, they are on disk. While the logger
// stops it takes nothing: ErrStopping.
func (s *Service) Accept(channel string, events []messaging.Event, now time.Time) ([]string, error) {
	if s.ready.stopping.Load() {
		return nil, ErrStopping
	}
	ids, err := s.accept(channel, events, now, false)
	if err != nil {
		return nil, err
	}
	if err := s.queue.sync(); err != nil {
		s.cfg.Log.Error("Syncing the spool", "error", err)
		return nil, err
	}
	return ids, nil
}

// accept queues events and writes their lines. What the API posted
// (subscribed false) is refused whole when there is no room; a published
// message cannot be refused: it is in the output, and counted as dropped
// from the history.
func (s *Service) accept(channel string, events []messaging.Event, now time.Time, subscribed bool) ([]string, error) {
	// The queue keeps entries as they are once added: what is needed of
	// them afterwards is read here, first.
	entries := make([]queued, len(events))
	var ids []string
	if !subscribed {
		// The API answers with them.
		ids = make([]string, len(events))
	}
	for i, e := range events {
		id := s.nextID()
		if ids != nil {
			ids[i] = id
		}
		entries[i] = queued{own: !subscribed || channel == ChannelGap, entry: eventlog.LogEntry{
			ID: id, Channel: channel, LoggedAt: now, Event: e,
		}}
	}
	backlog, err := s.queue.add(entries, func(err error) {
		if err == nil || subscribed {
			// Under the queue's lock: lines come out in queue order.
			s.out.write(entries)
		}
	})
	if err != nil && !subscribed {
		s.metrics.overflow.Add(float64(len(events)))
		s.cfg.Log.Error("No room for the events: refused", "channel", channel, "events", len(events), "error", err)
		return nil, err
	}
	s.counters.accepted(channel, events, err != nil, now)
	s.metrics.pending.Set(float64(backlog))
	if sp := s.queue.spool; sp != nil {
		s.metrics.spoolBytes.Set(float64(sp.Bytes()))
	}
	s.metrics.messages.WithLabelValues(channel).Add(float64(len(events)))
	if err != nil {
		s.metrics.dropped.WithLabelValues(channel).Add(float64(len(events)))
		s.logDropped(channel, len(events), err)
	}
	lag := s.metrics.lag.WithLabelValues(channel)
	for _, e := range events {
		if e.Nonconforming == "" {
			lag.Observe(max(now.Sub(e.Timestamp), 0).Seconds())
		} else {
			s.metrics.nonconforming.WithLabelValues(channel, e.Nonconforming).Inc()
		}
	}
	return ids, err
}

// nextID is the next event's ID, "<instance>-<sequence number>", made
// with one allocation.
func (s *Service) nextID() string {
	var buf [64]byte
	b := append(buf[:0], s.instance...)
	b = append(b, '-')
	return string(strconv.AppendUint(b, s.seq.Add(1), 10))
}

// logDropped says at most once a second that published messages found no
// room, so that a long outage does not flood the log.
func (s *Service) logDropped(channel string, n int, err error) {
	now := time.Now().UnixNano()
	if last := s.droppedLogged.Load(); now-last < int64(time.Second) || !s.droppedLogged.CompareAndSwap(last, now) {
		return
	}
	s.cfg.Log.Error("No room to keep published messages for the history: written to the output and counted as dropped",
		"channel", channel, "events", n, "error", err)
}

// countInvalid counts and logs a message skipped on a channel.
func (s *Service) countInvalid(channel string, err error, payload []byte) {
	reason := "invalid"
	var ie *messaging.InvalidError
	if errors.As(err, &ie) {
		reason = ie.Reason
	}
	s.metrics.invalid.WithLabelValues(channel, reason).Inc()
	s.counters.invalid(channel, time.Now())
	excerpt := payload
	if len(excerpt) > 200 {
		excerpt = excerpt[:200]
	}
	s.cfg.Log.Warn("Skipped invalid message", "channel", channel, "reason", reason, "error", err.Error(), "excerpt", string(excerpt))
}

// recordGap logs a time the subscription was down as an event of its own
// (on the pseudo-channel "gap"), and counts it for every channel and in
// the seconds the subscription was down.
func (s *Service) recordGap(g messaging.Gap) {
	s.metrics.gapSeconds.Add(g.End.Sub(g.Start).Seconds())
	s.logGap(g)
}

// logGap logs a gap in the history and counts it for every channel.
func (s *Service) logGap(g messaging.Gap) {
	payload, _ := messaging.Envelope(g.End, messaging.ComponentEventLogger, EventSubscriptionGap, map[string]any{
		"start": messaging.FormatTimestamp(g.Start), "end": messaging.FormatTimestamp(g.End),
		"seconds": g.End.Sub(g.Start).Seconds(), "channels": g.Channels,
	})
	s.cfg.Log.Warn("The subscription was down: messages published meanwhile may be lost", "start", g.Start, "end", g.End,
		"seconds", g.End.Sub(g.Start).Seconds(), "channels", len(g.Channels))
	s.counters.gap(g.Channels, g.End)
	for _, ch := range g.Channels {
		s.metrics.gaps.WithLabelValues(ch).Inc()
	}
	now := time.Now().UTC()
	e, err := s.cfg.Catalog.DecodeEvent(ChannelGap, payload, messaging.DecodeOptions{MaxBytes: 1 << 20, Received: now})
	if err != nil {
		s.cfg.Log.Error("Encoding the gap event", "error", err)
		return
	}
	_, _ = s.accept(ChannelGap, []messaging.Event{e}, now, true)
}

// lastSubscriber is a bus that says when a logger was last subscribed.
type lastSubscriber interface {
	LastSubscribed(ctx context.Context) (time.Time, error)
}

// startupGap reports the time from the last logger's heartbeat (on this
// prefix, in the stats hash) to this one's subscription as a gap, when no
// logger was subscribed meanwhile: a restart, a crash, a replacement. A
// logger that is still running (a rolling update's overlap) keeps its
// heartbeat fresh, and there is no gap.
func (s *Service) startupGap(ctx context.Context, channels []string) {
	ls, ok := s.store.(lastSubscriber)
	if !ok {
		return
	}
	now := time.Now().UTC()
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	last, err := ls.LastSubscribed(rctx)
	cancel()
	if err != nil || last.IsZero() {
		return
	}
	if now.Sub(last) <= 2*s.cfg.StatsInterval+time.Second {
		// Another replica listens, or did until a moment ago: it has
		// heard what this one has not, and should lead if the lease is
		// free (see leaseLoop).
		s.lease.othersListening.Store(true)
		return
	}
	g := messaging.Gap{Start: last, End: now, Channels: channels}
	if s.lease.leaser != nil {
		// Recorded by this replica if it leads; if another leads, that
		// one was listening and there was no gap.
		s.lease.mu.Lock()
		s.lease.startGap = &g
		s.lease.mu.Unlock()
		return
	}
	s.recordGap(g)
}
