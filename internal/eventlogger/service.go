package eventlogger

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratops/stratops/internal/eventlogger/settings"
	"github.com/stratops/stratops/pkg/messaging"
)

// ErrQueueFull is returned when the pending queue cannot take an event.
var ErrQueueFull = errors.New("eventlogger: pending queue is full")

// ChannelHTTP is the channel of events posted to /events without one.
const ChannelHTTP = "http"

// ServiceConfig configures the event logger service.
type ServiceConfig struct {
	// Catalog is the strategy's catalog; its Mode sets the standard's rules.
	Catalog messaging.Catalog
	// MaxMessageBytes bounds a message. default:
	// messaging.DefaultMaxMessageBytes.
	MaxMessageBytes int
	// PendingLimit bounds the events waiting for the bus. default:
	// settings.DefaultPendingLimit.
	PendingLimit int
	// BatchSize bounds the events written in one round trip. default: 256.
	BatchSize int
	// StatsInterval is how often the channel stats are written. default: 1s.
	StatsInterval time.Duration
	// HealthWindow is how far back the window stats (invalid share, lag
	// quantiles) look. default: messaging.HealthWindow(0), one minute.
	HealthWindow time.Duration
	// PingInterval is how often the bus is pinged for readiness. default: 1s.
	PingInterval time.Duration
	// DrainTimeout bounds the flush of pending events at shutdown.
	// default: settings.DefaultDrainTimeout.
	DrainTimeout time.Duration
	// Out receives one JSON line per logged event. default: io.Discard.
	Out io.Writer
	// Sink, when set, receives the same lines (a file).
	Sink io.Writer
	// Log is the service's own log. default: slog.Default().
	Log *slog.Logger
	// InMemoryFallback says the bus is memory because Redis was unreachable.
	InMemoryFallback bool
	// APIToken, when set, is the bearer token every request to the state
	// and events API must carry. The operator always sets it; a logger run
	// by hand without one serves the API to anyone who reaches it.
	APIToken string
	// MaxConcurrentRequests bounds the API requests served at once; more
	// are refused with 429. default: 16.
	MaxConcurrentRequests int
	// Holder names this replica in the lease (the pod's name). default:
	// the host name.
	Holder string
	// LeaseTTL is how long the lease lasts unrenewed: how long channel
	// messages wait for a standby to take over. default: 3s.
	LeaseTTL time.Duration
	// StandbyWindow is how far back a standby keeps what it hears, to log
	// what the leader had not written when it takes over. default: 30s.
	StandbyWindow time.Duration
}

// queued is an accepted event waiting for the history, with its place in
// the spool (0 without one).
type queued struct {
	entry messaging.LogEntry
	seq   uint64
	// own: only this replica has it (posted to its API, or its own gap
	// event), so it is written whoever holds the lease.
	own bool
}

// Service is the standard's Event Logger: it listens to every channel of
// the catalog, validates each message, logs the valid ones (stdout, sink,
// events:logged, events:history), counts and skips the invalid ones, keeps
// per-channel stats, and serves state, ingest, health and metrics over HTTP.
type Service struct {
	cfg      ServiceConfig
	bus      messaging.Bus
	metrics  *metrics
	window   *window
	instance string
	seq      atomic.Uint64

	mu      sync.Mutex
	pending []queued // the cache of the spool: what waits for the history
	// With a spool, the cache may spill: from spillNext on, what waits is
	// in the spool only, and the writer reads it from there; lastSeq is
	// the spool's newest record.
	spool     *Spool
	spilled   bool
	spillNext uint64
	lastSeq   uint64
	backlog   int                               // events waiting, cached or spilled
	stats     map[string]messaging.ChannelStats // not yet written to the bus
	notify    chan struct{}
	// windowShown is whether the last stats write carried traffic in the
	// window: an empty window is written once, then left alone.
	windowShown bool

	// inFlight holds a slot per API request being served.
	inFlight chan struct{}

	outMu      sync.Mutex
	busUp      atomic.Bool
	subscribed atomic.Bool
	wasDown    atomic.Bool
	// stopping: ingest is closed for the drain at shutdown.
	stopping      atomic.Bool
	droppedLogged atomic.Int64
	// The lease, when the bus has one (Redis): leaser, this replica's
	// value, and whether it leads. modeMu orders ingest against taking
	// over and stepping down; winMu guards the standby window and holder.
	leaser     leaser
	leaseValue string
	leader     atomic.Bool
	modeMu     sync.RWMutex
	winMu      sync.Mutex
	heard      []windowed
	holder     string
	startGap   *messaging.Gap
	// replaying: the first batches come from an earlier run's spool and
	// may already be in the history.
	replaying atomic.Bool
	// writeFailure is the permanent error (NOPERM, WRONGTYPE, OOM,
	// READONLY) the last write to Redis failed with: the logger is not
	// ready while it lasts, and says why.
	writeFailure atomic.Pointer[writeFailure]
}

// writeFailure is a write Redis refuses for good.
type writeFailure struct {
	Reason, Message string
	Since           time.Time
}

// NewService makes a service on a bus.
func NewService(cfg ServiceConfig, bus messaging.Bus) *Service {
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = messaging.DefaultMaxMessageBytes
	}
	if cfg.HealthWindow <= 0 {
		cfg.HealthWindow = messaging.HealthWindow(0)
	}
	if cfg.PendingLimit <= 0 {
		cfg.PendingLimit = settings.DefaultPendingLimit
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 256
	}
	if cfg.StatsInterval <= 0 {
		cfg.StatsInterval = time.Second
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = time.Second
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = settings.DefaultDrainTimeout
	}
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.MaxConcurrentRequests <= 0 {
		cfg.MaxConcurrentRequests = 16
	}
	if cfg.Holder == "" {
		cfg.Holder, _ = os.Hostname()
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = 3 * time.Second
	}
	if cfg.StandbyWindow <= 0 {
		cfg.StandbyWindow = 30 * time.Second
	}
	var id [4]byte
	_, _ = rand.Read(id[:])
	s := &Service{
		cfg: cfg, bus: bus, metrics: newMetrics(), window: newWindow(cfg.HealthWindow), instance: hex.EncodeToString(id[:]),
		stats: map[string]messaging.ChannelStats{}, notify: make(chan struct{}, 1),
		inFlight: make(chan struct{}, cfg.MaxConcurrentRequests),
	}
	s.busUp.Store(true)
	s.metrics.busUp.Set(1)
	s.metrics.initChannels(s.listenChannels())
	if l, ok := bus.(leaser); ok {
		s.leaser, s.leaseValue = l, newLeaseValue(cfg.Holder)
	} else {
		s.leader.Store(true) // memory: one process, no one to share with
		s.metrics.leader.Set(1)
	}
	if cfg.InMemoryFallback {
		s.metrics.inMemory.Set(1)
	}
	return s
}

// OpenSpool puts the spool in dir (at most maxBytes) under the service:
// accepted events are kept there until the history has them. What an
// earlier run left there is written first, without duplicates. Call it
// before Run.
func (s *Service) OpenSpool(dir string, maxBytes int64) error {
	sp, replay, err := OpenSpool(dir, maxBytes)
	if err != nil {
		return err
	}
	s.spool = sp
	s.metrics.spoolCapacity.Set(float64(maxBytes))
	s.metrics.spoolBytes.Set(float64(sp.Bytes()))
	if len(replay) > 0 {
		s.spilled, s.spillNext = true, replay[0].Seq
		s.lastSeq = replay[len(replay)-1].Seq
		s.backlog = len(replay)
		s.metrics.pending.Set(float64(s.backlog))
		s.replaying.Store(true)
		s.cfg.Log.Info("Spool holds events from an earlier run: writing them to the history first", "events", len(replay))
	} else {
		s.lastSeq = sp.next - 1
	}
	return nil
}

// listenChannels are the catalog's channels but the logger's own output.
func (s *Service) listenChannels() []string {
	var out []string
	for _, c := range s.cfg.Catalog.Channels {
		if c.Name != messaging.ChannelEventsLogged {
			out = append(out, c.Name)
		}
	}
	return out
}

// Run subscribes and serves until ctx ends. Then it closes ingest (the
// subscription, and the API answers 503), writes what waits to the history
// within DrainTimeout, and flushes the stats. What is still waiting then
// stays in the spool for the next run. HTTP is served by the caller with
// Handler.
func (s *Service) Run(ctx context.Context) error {
	channels := s.listenChannels()
	sub, err := s.bus.Subscribe(ctx, channels...)
	if err != nil {
		return err
	}
	s.subscribed.Store(true)
	s.startupGap(ctx, channels)
	// The lease is kept through the drain at shutdown (the channel events
	// waiting are written under it), then given up.
	leaseCtx, stopLease := context.WithCancel(context.WithoutCancel(ctx))
	leaseDone := make(chan struct{})
	if s.leaser != nil {
		go func() { defer close(leaseDone); s.leaseLoop(leaseCtx) }()
	} else {
		close(leaseDone)
	}
	s.cfg.Log.Info("Listening", "bus", s.bus.Kind(), "channels", len(channels), "prefix", s.cfg.Catalog.KeyPrefix, "mode", s.cfg.Catalog.Mode,
		"spool", s.spool != nil, "holder", s.cfg.Holder)

	var wg sync.WaitGroup
	syncReq := make(chan struct{}, 1)
	syncDone := make(chan struct{})
	go func() {
		defer close(syncDone)
		for range syncReq {
			s.syncSpool()
			// At most every 5 ms: bursts share an fsync.
			time.Sleep(5 * time.Millisecond)
		}
	}()
	wg.Go(func() {
		c := sub.C()
		for d := range c {
			_ = s.Ingest(d.Channel, d.Payload)
			if len(c) == 0 {
				// What arrived together is made durable together, off
				// this loop: no one waits on a published message's fsync.
				select {
				case syncReq <- struct{}{}:
				default:
				}
			}
		}
	})
	if gr, ok := sub.(messaging.GapReporter); ok {
		wg.Go(func() {
			for g := range gr.Gaps() {
				if s.leader.Load() {
					s.recordGap(g)
					continue
				}
				// A standby's gap is a hole in its window only.
				s.metrics.gapSeconds.Add(g.End.Sub(g.Start).Seconds())
				s.cfg.Log.Warn("The standby's subscription was down: its window has a hole", "start", g.Start, "end", g.End)
			}
		})
	}
	writerCtx, stopWriter := context.WithCancel(context.WithoutCancel(ctx))
	writerDone := make(chan struct{})
	go func() { defer close(writerDone); s.writeLoop(writerCtx, ctx.Done()) }()
	wg.Go(func() { s.statsLoop(ctx) })
	wg.Go(func() { s.pingLoop(ctx) })

	<-ctx.Done()
	// Ingest first: nothing is accepted that the drain could not take.
	s.stopping.Store(true)
	s.subscribed.Store(false)
	_ = sub.Close()
	wg.Wait()
	close(syncReq)
	<-syncDone
	s.syncSpool()
	// The writer drains what is pending until it is empty or time is up.
	select {
	case <-writerDone:
	case <-time.After(s.cfg.DrainTimeout):
		stopWriter()
		<-writerDone
	}
	stopWriter()
	stopLease()
	<-leaseDone
	if s.leaser != nil && s.leader.Load() {
		rctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if err := s.leaser.ReleaseLease(rctx, s.leaseValue); err == nil {
			s.cfg.Log.Info("Gave up the lease: a standby takes over at once")
		}
		cancel()
	}
	if n := s.Pending(); n > 0 {
		if s.spool != nil {
			s.cfg.Log.Warn("Events not yet in the history at shutdown stay in the spool for the next start", "pending", n)
		} else {
			s.cfg.Log.Error("Events not written to the bus at shutdown are lost (no spool)", "pending", n)
		}
	}
	if s.spool != nil {
		if err := s.spool.Close(); err != nil {
			s.cfg.Log.Error("Closing the spool", "error", err)
		}
	}
	flushCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s.flushStats(flushCtx)
	return nil
}

func (s *Service) syncSpool() {
	if s.spool == nil {
		return
	}
	s.mu.Lock()
	last := s.lastSeq
	s.mu.Unlock()
	if err := s.spool.Sync(last); err != nil {
		s.cfg.Log.Error("Syncing the spool", "error", err)
	}
}

// Ingest decodes one message from a channel and logs it, or counts and
// skips it when it is not an event (not JSON, not an object, too large).
// A message that finds the spool (or, without one, the queue) full is
// still written to the output, and counted as dropped from the history.
// It returns the *messaging.InvalidError, ErrSpoolFull or ErrQueueFull.
func (s *Service) Ingest(channel string, payload []byte) error {
	now := time.Now().UTC()
	s.modeMu.RLock()
	defer s.modeMu.RUnlock()
	if !s.leader.Load() {
		// A standby keeps what it hears for its window, and logs none.
		s.hold(channel, payload, now)
		return nil
	}
	return s.ingestAt(channel, payload, now)
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
	if s.stopping.Load() {
		return nil, ErrStopping
	}
	ids, err := s.accept(channel, events, now, false)
	if err != nil {
		return nil, err
	}
	if s.spool != nil {
		s.mu.Lock()
		last := s.lastSeq
		s.mu.Unlock()
		if err := s.spool.Sync(last); err != nil {
			s.cfg.Log.Error("Syncing the spool", "error", err)
			return nil, err
		}
	}
	return ids, nil
}

// ErrStopping is returned by Accept once the logger is shutting down.
var ErrStopping = errors.New("eventlogger: shutting down: not accepting events")

func (s *Service) accept(channel string, events []messaging.Event, now time.Time, subscribed bool) ([]string, error) {
	entries := make([]queued, len(events))
	for i, e := range events {
		entries[i] = queued{own: !subscribed || channel == ChannelGap, entry: messaging.LogEntry{
			ID:      s.instance + "-" + strconv.FormatUint(s.seq.Add(1), 10),
			Channel: channel, LoggedAt: now, Event: e,
		}}
	}
	s.mu.Lock()
	err := s.enqueue(entries)
	st := s.stats[channel]
	if err != nil && !subscribed {
		s.mu.Unlock()
		s.metrics.overflow.Add(float64(len(entries)))
		s.cfg.Log.Error("No room for the events: refused", "channel", channel, "events", len(entries), "error", err)
		return nil, err
	}
	if err != nil {
		// A published message cannot be refused: it is in the output,
		// and counted as dropped from the history.
		st.Dropped += int64(len(entries))
	}
	st.Messages += int64(len(entries))
	for _, e := range events {
		if e.Nonconforming != "" {
			st.Nonconforming++
		}
	}
	st.LastMessageTime = now
	s.stats[channel] = st
	n := s.backlog
	s.writeLines(entries) // under mu: lines come out in queue order
	s.mu.Unlock()

	s.metrics.pending.Set(float64(n))
	s.metrics.messages.WithLabelValues(channel).Add(float64(len(entries)))
	if err != nil {
		s.metrics.dropped.WithLabelValues(channel).Add(float64(len(entries)))
		s.logDropped(channel, len(entries), err)
	}
	ids := make([]string, len(entries))
	for i, q := range entries {
		e := q.entry
		ids[i] = e.ID
		lag := time.Duration(-1)
		if e.Event.Nonconforming == "" {
			lag = max(now.Sub(e.Event.Timestamp), 0)
			s.metrics.lag.WithLabelValues(channel).Observe(lag.Seconds())
		} else {
			s.metrics.nonconforming.WithLabelValues(channel, e.Event.Nonconforming).Inc()
		}
		s.window.valid(channel, now, lag)
	}
	select {
	case s.notify <- struct{}{}:
	default:
	}
	return ids, err
}

// enqueue (under mu) puts entries in the spool, and in the cache while it
// has room and has not spilled; without a spool, in the queue only.
func (s *Service) enqueue(entries []queued) error {
	if s.spool == nil {
		if len(s.pending)+len(entries) > s.cfg.PendingLimit {
			return ErrQueueFull
		}
		s.pending = append(s.pending, entries...)
		s.backlog = len(s.pending)
		return nil
	}
	recs := make([]spoolRecord, len(entries))
	for i, q := range entries {
		recs[i] = spoolRecord{HTTP: q.own, ID: q.entry.ID, Channel: q.entry.Channel, LoggedAt: q.entry.LoggedAt, Payload: q.entry.Event.Payload}
	}
	last, err := s.spool.Append(recs)
	if err != nil {
		return err
	}
	for i := range entries {
		entries[i].seq = recs[i].Seq
	}
	s.lastSeq = last
	s.backlog += len(entries)
	s.metrics.spoolBytes.Set(float64(s.spool.Bytes()))
	if !s.spilled && len(s.pending)+len(entries) > s.cfg.PendingLimit {
		s.spilled, s.spillNext = true, entries[0].seq
	}
	if !s.spilled {
		s.pending = append(s.pending, entries...)
	}
	return nil
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

// recordGap logs a time the subscription was down as an event of its own
// (on the pseudo-channel "gap"), and counts it for every channel.
func (s *Service) recordGap(g messaging.Gap) {
	payload, _ := messaging.Envelope(g.End, messaging.ComponentEventLogger, EventSubscriptionGap, map[string]any{
		"start": messaging.FormatTimestamp(g.Start), "end": messaging.FormatTimestamp(g.End),
		"seconds": g.End.Sub(g.Start).Seconds(), "channels": g.Channels,
	})
	s.cfg.Log.Warn("The subscription was down: messages published meanwhile may be lost", "start", g.Start, "end", g.End,
		"seconds", g.End.Sub(g.Start).Seconds(), "channels", len(g.Channels))
	s.mu.Lock()
	for _, ch := range g.Channels {
		st := s.stats[ch]
		st.Gaps++
		st.LastGapTime = g.End
		s.stats[ch] = st
	}
	s.mu.Unlock()
	for _, ch := range g.Channels {
		s.metrics.gaps.WithLabelValues(ch).Inc()
	}
	s.metrics.gapSeconds.Add(g.End.Sub(g.Start).Seconds())
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
	ls, ok := s.bus.(lastSubscriber)
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
	if now.Sub(last) > 2*s.cfg.StatsInterval+time.Second {
		g := messaging.Gap{Start: last, End: now, Channels: channels}
		if s.leaser != nil {
			// Recorded by this replica if it leads; if another leads,
			// that one was listening and there was no gap.
			s.startGap = &g
			return
		}
		s.recordGap(g)
	}
}

// ChannelGap is the pseudo-channel of the logger's gap events, and
// EventSubscriptionGap their event type.
const (
	ChannelGap           = "gap"
	EventSubscriptionGap = "subscription_gap"
)

func (s *Service) writeLines(entries []queued) {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	for _, q := range entries {
		e := q.entry
		line, err := e.MarshalJSON()
		if err != nil {
			// The payload was checked JSON when it was decoded.
			s.cfg.Log.Error("Encoding event line", "id", e.ID, "error", err)
			continue
		}
		line = append(line, '\n')
		if _, err := s.cfg.Out.Write(line); err != nil {
			s.cfg.Log.Error("Writing event line", "error", err)
		}
		if s.cfg.Sink != nil {
			if _, err := s.cfg.Sink.Write(line); err != nil {
				s.cfg.Log.Error("Writing event line to the sink", "error", err)
			}
		}
	}
}

func (s *Service) countInvalid(channel string, err error, payload []byte) {
	reason := "invalid"
	var ie *messaging.InvalidError
	if errors.As(err, &ie) {
		reason = ie.Reason
	}
	s.metrics.invalid.WithLabelValues(channel, reason).Inc()
	s.window.invalid(channel, time.Now())
	s.mu.Lock()
	st := s.stats[channel]
	st.Invalid++
	s.stats[channel] = st
	s.mu.Unlock()
	excerpt := payload
	if len(excerpt) > 200 {
		excerpt = excerpt[:200]
	}
	s.cfg.Log.Warn("Skipped invalid message", "channel", channel, "reason", reason, "error", err.Error(), "excerpt", string(excerpt))
}

// Pending is how many events wait for the history.
func (s *Service) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.backlog
}

// nextBatch is the oldest events waiting, at most BatchSize: from the
// cache, or read back from the spool when the cache has spilled.
func (s *Service) nextBatch() ([]queued, bool, error) {
	s.mu.Lock()
	if len(s.pending) > 0 || !s.spilled {
		n := min(len(s.pending), s.cfg.BatchSize)
		b := append([]queued(nil), s.pending[:n]...)
		s.mu.Unlock()
		return sameSource(b), false, nil
	}
	from := s.spillNext
	s.mu.Unlock()
	recs, err := s.spool.ReadFrom(from, s.cfg.BatchSize)
	if err != nil {
		return nil, true, err
	}
	b := make([]queued, 0, len(recs))
	for _, r := range recs {
		e, err := s.cfg.Catalog.DecodeEvent(r.Channel, r.Payload, messaging.DecodeOptions{MaxBytes: max(s.cfg.MaxMessageBytes, 1<<20), Received: r.LoggedAt})
		if err != nil {
			// It was decoded when it was accepted; a record that no longer
			// decodes (a catalog change) is kept as it came.
			e = messaging.Event{Channel: r.Channel, Timestamp: r.LoggedAt, Payload: r.Payload, Nonconforming: "spool_replay"}
		}
		b = append(b, queued{seq: r.Seq, own: r.HTTP, entry: messaging.LogEntry{ID: r.ID, Channel: r.Channel, LoggedAt: r.LoggedAt, Event: e}})
	}
	return sameSource(b), true, nil
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

// record writes a batch to the history. With a lease, channel events are
// written only by the leader, fenced: a replica that does not hold the
// lease (any more) leaves them to the one that does, which heard them too
// (handedOver). Its own events are written whoever leads.
func (s *Service) record(ctx context.Context, batch []queued) (handedOver bool, err error) {
	switch {
	case s.leaser == nil:
		return false, s.bus.Record(ctx, entries(batch))
	case batch[0].own:
		return false, s.leaser.RecordFenced(ctx, entries(batch), "")
	case !s.leader.Load():
		return true, nil
	}
	err = s.leaser.RecordFenced(ctx, entries(batch), s.leaseValue)
	if errors.Is(err, messaging.ErrFenced) {
		// The lease is not ours on this Redis any more. Lapsed (a failover
		// promoted a replica after the lease's TTL ran out): take it back
		// and write; only another holder, which heard these events too,
		// takes them over.
		held, holder, aerr := s.leaser.AcquireLease(ctx, s.leaseValue, s.cfg.LeaseTTL)
		switch {
		case aerr != nil:
			return false, aerr
		case held:
			return false, s.leaser.RecordFenced(ctx, entries(batch), s.leaseValue)
		}
		if s.leader.Load() {
			s.stepDown(holder)
		}
		return true, nil
	}
	return false, err
}

// done (after the history has them) takes a batch off the queue: off the
// cache, or past it in the spool; the spool may then free them.
func (s *Service) done(b []queued, fromSpool bool) {
	if len(b) == 0 {
		return
	}
	s.mu.Lock()
	if fromSpool {
		s.spillNext = b[len(b)-1].seq + 1
		if s.spillNext > s.lastSeq {
			// Caught up: what comes next goes through the cache again.
			s.spilled = false
		}
	} else {
		s.pending = s.pending[len(b):]
		if len(s.pending) == 0 {
			s.pending = nil // let the backing array go after a long outage
		}
	}
	s.backlog -= len(b)
	left := s.backlog
	s.mu.Unlock()
	if s.spool != nil {
		if err := s.spool.Ack(b[len(b)-1].seq); err != nil {
			s.cfg.Log.Error("Marking the spool", "error", err)
		}
		s.metrics.spoolBytes.Set(float64(s.spool.Bytes()))
	}
	s.metrics.pending.Set(float64(left))
}

func entries(b []queued) []messaging.LogEntry {
	out := make([]messaging.LogEntry, len(b))
	for i, q := range b {
		out[i] = q.entry
	}
	return out
}

// writeLoop writes waiting events to the history in order, batch by
// batch: history first, then the notifications. A failed batch stays at
// the head and is retried with backoff; before a retry, entries that did
// reach the history (the reply was lost) are taken off it, and only their
// notifications are sent, so that neither is written twice. A failure of
// the notifications alone is not retried (that could send them twice): it
// is counted. A permanent error (NOPERM, WRONGTYPE, OOM, READONLY) makes
// the logger not ready, with the reason, until a write succeeds. It returns
// when stop is closed and nothing waits, or when ctx ends.
func (s *Service) writeLoop(ctx context.Context, stop <-chan struct{}) {
	backoff := 100 * time.Millisecond
	// After a restart the spool's first records may be in the history.
	failed := s.replaying.Load()
	for {
		batch, fromSpool, err := s.nextBatch()
		if err != nil {
			s.cfg.Log.Error("Reading the spool", "error", err)
			select {
			case <-time.After(time.Second):
				continue
			case <-ctx.Done():
				return
			}
		}
		if len(batch) == 0 {
			select {
			case <-s.notify:
				continue
			case <-stop:
				if s.Pending() == 0 {
					return
				}
				continue
			case <-ctx.Done():
				return
			}
		}
		if failed {
			ids, err := s.bus.RecentIDs(ctx, 2*len(batch)+64)
			if err != nil {
				// Whether the last try landed is unknown until the
				// history can be read: writing now could write it twice.
				select {
				case <-time.After(backoff):
				case <-ctx.Done():
					return
				}
				backoff = min(2*backoff, 5*time.Second)
				continue
			}
			n := 0
			for n < len(batch) && ids[batch[n].entry.ID] {
				n++
			}
			if n > 0 {
				if err := s.bus.Notify(ctx, entries(batch[:n])); err != nil {
					s.metrics.notifyLost.Add(float64(n))
				}
				s.done(batch[:n], fromSpool)
				batch = batch[n:]
			}
			if len(batch) == 0 {
				failed = false
				continue
			}
		}
		start := time.Now()
		handedOver, err := s.record(ctx, batch)
		s.metrics.recordDuration.Observe(time.Since(start).Seconds())
		if handedOver {
			s.metrics.handedOver.Add(float64(len(batch)))
			s.done(batch, fromSpool)
			failed = false
			continue
		}
		var ne *messaging.NotifyError
		if err == nil || errors.As(err, &ne) {
			if ne != nil {
				s.metrics.notifyLost.Add(float64(ne.Events))
				s.cfg.Log.Warn("History written; its events:logged notifications were not all published", "error", err)
			}
			s.done(batch, fromSpool)
			if failed || s.wasDown.Swap(false) {
				s.cfg.Log.Info("Bus is back: pending events written", "pending", s.Pending())
			}
			if s.writeFailure.Swap(nil) != nil {
				s.metrics.setWriteFailing("")
				s.cfg.Log.Info("Redis takes the history's writes again")
			}
			failed = false
			s.replaying.Store(false)
			backoff = 100 * time.Millisecond
			continue
		}
		s.metrics.writeErrors.Inc()
		s.noteWriteError(err)
		if !failed {
			s.cfg.Log.Error("Writing events to the bus failed; they wait and are retried", "error", err, "pending", s.Pending())
		}
		failed = true
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// noteWriteError keeps a permanent write error for readiness and metrics,
// and logs it when it is new.
func (s *Service) noteWriteError(err error) {
	reason := messaging.PermanentReason(err)
	if reason == "" {
		return
	}
	wf := &writeFailure{Reason: reason, Message: err.Error(), Since: time.Now()}
	old := s.writeFailure.Swap(wf)
	if old != nil && old.Reason == reason && old.Message == wf.Message {
		wf.Since = old.Since
		return
	}
	s.metrics.setWriteFailing(reason)
	s.cfg.Log.Error("Redis refuses the history's writes: nothing reaches the history until this is fixed in Redis; not ready",
		"reason", reason, "error", err.Error())
}

func (s *Service) statsLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.StatsInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.flushStats(ctx)
		}
	}
}

// flushStats writes the counters gathered since the last flush, and the
// window as it is now; on failure the counters are kept and added to the
// next one.
func (s *Service) flushStats(ctx context.Context) {
	now := time.Now().UTC()
	windows := s.window.stats(now)
	s.mu.Lock()
	delta := s.stats
	s.stats = map[string]messaging.ChannelStats{}
	showWindow := (len(windows) > 0 || s.windowShown) && s.leader.Load()
	s.mu.Unlock()
	u := messaging.StatsUpdate{Counters: delta, WindowLength: s.cfg.HealthWindow, At: now}
	if s.subscribed.Load() {
		// The heartbeat a logger starting after this one reads: the
		// time from it to that one's subscription is a gap.
		u.SubscribedAt = now
	} else if len(delta) == 0 && !showWindow {
		return
	}
	if showWindow {
		// Every channel of the catalog, so that one that went quiet shows
		// an empty window rather than its last busy one.
		u.Windows = make(map[string]messaging.WindowStats, len(s.cfg.Catalog.Channels))
		for _, c := range s.cfg.Catalog.Channels {
			u.Windows[c.Name] = windows[c.Name]
		}
		for ch, w := range windows {
			u.Windows[ch] = w
		}
	}
	if err := s.bus.WriteStats(ctx, u); err != nil {
		s.metrics.statsErrors.Inc()
		s.mu.Lock()
		for ch, d := range delta {
			cur := s.stats[ch]
			cur.Add(d)
			s.stats[ch] = cur
		}
		s.mu.Unlock()
		return
	}
	s.mu.Lock()
	s.windowShown = len(windows) > 0
	s.mu.Unlock()
}

func (s *Service) pingLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.PingInterval)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, s.cfg.PingInterval)
		err := s.bus.Ping(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		s.setBusUp(err)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Service) setBusUp(err error) {
	up := err == nil
	if s.busUp.Swap(up) != up {
		if up {
			s.cfg.Log.Info("Bus reachable again", "bus", s.bus.Kind())
		} else {
			s.wasDown.Store(true)
			msg := "Bus unreachable"
			if s.cfg.Catalog.Mode == messaging.ModeLive {
				msg = "Redis unreachable: Redis is required for live trading; not ready until it returns"
			}
			s.cfg.Log.Error(msg, "error", err)
		}
	}
	if up {
		s.metrics.busUp.Set(1)
	} else {
		s.metrics.busUp.Set(0)
	}
}

// Ready reports whether the logger can do its job, and why not. In Live it
// needs its bus (Redis); a backtest is ready on memory too.
func (s *Service) Ready() (bool, string) {
	bus := s.bus.Kind()
	if s.cfg.InMemoryFallback {
		bus = "memory (in-memory fallback: Redis was unreachable at start)"
	}
	switch {
	case s.stopping.Load():
		return false, "stopping: draining what waits for the history"
	case !s.subscribed.Load():
		return false, "not subscribed"
	case !s.busUp.Load() && s.cfg.Catalog.Mode == messaging.ModeLive:
		return false, "Redis unreachable: Redis is required for live trading"
	}
	if wf := s.writeFailure.Load(); wf != nil {
		return false, fmt.Sprintf("%s: Redis refuses the history's writes since %s: %s", wf.Reason, wf.Since.UTC().Format(time.RFC3339), wf.Message)
	}
	spool := "off"
	if s.spool != nil {
		spool = fmt.Sprintf("%d/%d bytes", s.spool.Bytes(), s.spool.MaxBytes())
	}
	role := "leader"
	if lead, holder := s.Leader(); !lead {
		role = "standby (leader: " + holder + ")"
	}
	return true, fmt.Sprintf("ok: mode=%s bus=%s pending=%d spool=%s role=%s", s.cfg.Catalog.Mode, bus, s.Pending(), spool, role)
}
