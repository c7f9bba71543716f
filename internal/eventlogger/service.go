package eventlogger

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/stratops/stratops/internal/eventlog"
	"github.com/stratops/stratops/internal/eventlogger/settings"
	"github.com/stratops/stratops/pkg/messaging"
)

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
	// quantiles) look. default: eventlog.HealthWindow(0), one minute.
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
	// Retry makes the writer's retry policy. default: Retry.
	Retry func() backoff.BackOff
}

// Service is the standard's Event Logger: it listens to every channel of
// the catalog, validates each message, logs the valid ones (stdout, sink,
// events:logged, events:history), counts and skips the invalid ones, keeps
// per-channel stats, and serves state, ingest, health and metrics over HTTP.
// It composes parts that each own their state: the queue and its spool
// (queue.go), the output lines (output.go), the writer (writer.go), the
// lease (lease.go), the counters (counters.go), readiness (readiness.go),
// and the API (http.go).
type Service struct {
	cfg ServiceConfig
	bus messaging.Bus
	// store keeps the event log: history, notifications, stats, and on
	// Redis the lease.
	store    eventlog.Store
	metrics  *metrics
	instance string
	seq      atomic.Uint64

	queue    *queue
	out      *output
	counters *counters
	lease    leadership
	ready    readiness
	// inFlight holds a slot per API request being served.
	inFlight chan struct{}
	// replaying: the first batches come from an earlier run's spool and
	// may already be in the history.
	replaying     atomic.Bool
	droppedLogged atomic.Int64
	// decoded is ingestAll's room for a delivery batch's events, reused:
	// only the one goroutine that receives calls it.
	decoded []messaging.Event
}

// NewService makes a service that listens on a bus and keeps the event
// log in a store (Redis, or memory for a backtest without it). Every
// default of ServiceConfig is set here.
func NewService(cfg ServiceConfig, bus messaging.Bus, store eventlog.Store) *Service {
	cfg = withDefaults(cfg)
	var id [4]byte
	_, _ = rand.Read(id[:])
	s := &Service{
		cfg: cfg, bus: bus, store: store, metrics: newMetrics(), instance: hex.EncodeToString(id[:]),
		queue: newQueue(cfg.PendingLimit), out: &output{out: cfg.Out, sink: cfg.Sink, log: cfg.Log},
		counters: newCounters(cfg.HealthWindow), inFlight: make(chan struct{}, cfg.MaxConcurrentRequests),
	}
	s.ready.busUp.Store(true)
	s.metrics.busUp.Set(1)
	s.metrics.initChannels(s.listenChannels())
	if l, ok := store.(leaser); ok {
		s.lease.leaser, s.lease.value = l, newLeaseValue(cfg.Holder)
	} else {
		s.lease.leader.Store(true) // memory: one process, no one to share with
		s.metrics.leader.Set(1)
	}
	if cfg.InMemoryFallback {
		s.metrics.inMemory.Set(1)
	}
	return s
}

func withDefaults(cfg ServiceConfig) ServiceConfig {
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = messaging.DefaultMaxMessageBytes
	}
	if cfg.HealthWindow <= 0 {
		cfg.HealthWindow = eventlog.HealthWindow(0)
	}
	if cfg.PendingLimit <= 0 {
		cfg.PendingLimit = settings.DefaultPendingLimit
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 256
	}
	cfg.StatsInterval = cmp.Or(cfg.StatsInterval, time.Second)
	cfg.PingInterval = cmp.Or(cfg.PingInterval, time.Second)
	cfg.DrainTimeout = cmp.Or(cfg.DrainTimeout, settings.DefaultDrainTimeout)
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
	cfg.LeaseTTL = cmp.Or(cfg.LeaseTTL, 3*time.Second)
	cfg.StandbyWindow = cmp.Or(cfg.StandbyWindow, 30*time.Second)
	if cfg.Retry == nil {
		cfg.Retry = Retry
	}
	return cfg
}

// UseSpool puts the spool in dir (at most maxBytes) under the service:
// accepted events are kept there until the history has them. What an
// earlier run left there is written first, without duplicates. Call it
// before Run.
func (s *Service) UseSpool(dir string, maxBytes int64) error {
	sp, replay, err := OpenSpool(dir, maxBytes)
	if err != nil {
		return err
	}
	s.queue.useSpool(sp, replay)
	s.metrics.spoolCapacity.Set(float64(maxBytes))
	s.metrics.spoolBytes.Set(float64(sp.Bytes()))
	if len(replay) > 0 {
		s.metrics.pending.Set(float64(len(replay)))
		s.replaying.Store(true)
		s.cfg.Log.Info("Spool holds events from an earlier run: writing them to the history first", "events", len(replay))
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
	s.ready.subscribed.Store(true)
	s.lease.subscribed = time.Now()
	s.startupGap(ctx, channels)
	// The lease is kept through the drain at shutdown (the channel events
	// waiting are written under it), then given up.
	leaseCtx, stopLease := context.WithCancel(context.WithoutCancel(ctx))
	leaseDone := make(chan struct{})
	if s.lease.leaser != nil {
		go func() { defer close(leaseDone); s.leaseLoop(leaseCtx) }()
	} else {
		close(leaseDone)
	}
	s.cfg.Log.Info("Listening", "bus", s.bus.Kind(), "channels", len(channels), "prefix", s.cfg.Catalog.KeyPrefix, "mode", s.cfg.Catalog.Mode,
		"spool", s.queue.spool != nil, "holder", s.cfg.Holder)
	var wg sync.WaitGroup
	stopSync := s.receive(&wg, sub)
	writerCtx, stopWriter := context.WithCancel(context.WithoutCancel(ctx))
	writerDone := make(chan struct{})
	go func() { defer close(writerDone); s.writeLoop(writerCtx, ctx.Done()) }()
	wg.Go(func() { s.statsLoop(ctx) })
	wg.Go(func() { s.pingLoop(ctx) })

	<-ctx.Done()
	// Ingest first: nothing is accepted that the drain could not take.
	s.ready.stopping.Store(true)
	s.ready.subscribed.Store(false)
	_ = sub.Close()
	wg.Wait()
	stopSync()
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
	s.shutdown()
	return nil
}

// receiveBatch is the most deliveries ingested together.
const receiveBatch = 256

// receive ingests what the subscription delivers, and its gaps, in
// goroutines of wg; what arrived together is made durable together by a
// goroutine of its own, which stopSync ends after a last sync.
func (s *Service) receive(wg *sync.WaitGroup, sub messaging.Subscription) (stopSync func()) {
	// A request carries when it was made; one waits while a sync runs,
	// and later ones share it.
	syncReq := make(chan time.Time, 1)
	syncDone := make(chan struct{})
	go func() {
		defer close(syncDone)
		for at := range syncReq {
			// A published message's record is synced within 5 ms of the
			// request, with the others of those 5 ms, unless the history
			// has them by then: they are needed no more, and at a steady
			// rate most are never synced (the fsyncs were two-fifths of
			// the logger's CPU at 10,000 msg/s). Until then a record is in
			// the spool's write buffer, as it was until its burst's sync.
			seq := s.queue.added()
			time.Sleep(time.Until(at.Add(publishedSyncDelay)))
			if err := s.queue.syncUpTo(seq); err != nil {
				s.cfg.Log.Error("Syncing the spool", "error", err)
			}
		}
	}()
	wg.Go(func() {
		c := sub.C()
		// What has arrived is taken together, up to a batch.
		batch := make([]messaging.Delivery, 0, receiveBatch)
		for d := range c {
			batch = append(batch[:0], d)
			for more := true; more && len(batch) < receiveBatch; {
				select {
				case d, ok := <-c:
					if more = ok; ok {
						batch = append(batch, d)
					}
				default:
					more = false
				}
			}
			s.ingestAll(batch)
			if len(c) == 0 {
				// Off this loop: no one waits on a published message's
				// fsync.
				select {
				case syncReq <- time.Now():
				default:
				}
			}
		}
	})
	if gr, ok := sub.(messaging.GapReporter); ok {
		wg.Go(func() {
			for g := range gr.Gaps() {
				if s.lease.leader.Load() {
					s.recordGap(g)
					continue
				}
				// A standby's gap is a hole in its window: kept, and
				// recorded as a gap if this replica takes over while the
				// hole is within the window it recovers from.
				s.holdGap(g)
				s.metrics.gapSeconds.Add(g.End.Sub(g.Start).Seconds())
				s.cfg.Log.Warn("The standby's subscription was down: its window has a hole", "start", g.Start, "end", g.End)
			}
		})
	}
	return func() {
		close(syncReq)
		<-syncDone
		s.syncSpool()
	}
}

// shutdown gives the lease up, says what stays in the spool, closes it and
// writes the last stats.
func (s *Service) shutdown() {
	if s.lease.leaser != nil && s.lease.leader.Load() {
		rctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if err := s.lease.leaser.ReleaseLease(rctx, s.lease.value); err == nil {
			s.cfg.Log.Info("Gave up the lease: a standby takes over at once")
		}
		cancel()
	}
	if n := s.Pending(); n > 0 {
		if s.queue.spool != nil {
			s.cfg.Log.Warn("Events not yet in the history at shutdown stay in the spool for the next start", "pending", n)
		} else {
			s.cfg.Log.Error("Events not written to the bus at shutdown are lost (no spool)", "pending", n)
		}
	}
	if s.queue.spool != nil {
		if err := s.queue.spool.Close(); err != nil {
			s.cfg.Log.Error("Closing the spool", "error", err)
		}
	}
	flushCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s.flushStats(flushCtx)
}

// publishedSyncDelay is how long a published message's spool record may
// wait for its fsync, and for the history to make it needless.
const publishedSyncDelay = 5 * time.Millisecond

func (s *Service) syncSpool() {
	if err := s.queue.sync(); err != nil {
		s.cfg.Log.Error("Syncing the spool", "error", err)
	}
}

// Pending is how many events wait for the history.
func (s *Service) Pending() int { return s.queue.len() }

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

// flushStats writes the counters to the bus's stats hash.
func (s *Service) flushStats(ctx context.Context) {
	err := s.counters.flush(ctx, s.store.WriteStats, flushOptions{
		subscribed: s.ready.subscribed.Load(), leader: s.lease.leader.Load(),
		channels: s.cfg.Catalog.Channels, length: s.cfg.HealthWindow,
	})
	if err != nil {
		s.metrics.statsErrors.Inc()
	}
}
