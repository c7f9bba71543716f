package eventlogger

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

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
	// PendingLimit bounds the events waiting for the bus. default: 100000.
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
	// DrainTimeout bounds the flush of pending events at shutdown. default: 10s.
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
	pending []messaging.LogEntry
	stats   map[string]messaging.ChannelStats // not yet written to the bus
	notify  chan struct{}
	// windowShown is whether the last stats write carried traffic in the
	// window: an empty window is written once, then left alone.
	windowShown bool

	// inFlight holds a slot per API request being served.
	inFlight chan struct{}

	outMu      sync.Mutex
	busUp      atomic.Bool
	subscribed atomic.Bool
	wasDown    atomic.Bool
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
		cfg.PendingLimit = 100_000
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
		cfg.DrainTimeout = 10 * time.Second
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
	var id [4]byte
	_, _ = rand.Read(id[:])
	s := &Service{
		cfg: cfg, bus: bus, metrics: newMetrics(), window: newWindow(cfg.HealthWindow), instance: hex.EncodeToString(id[:]),
		stats: map[string]messaging.ChannelStats{}, notify: make(chan struct{}, 1),
		inFlight: make(chan struct{}, cfg.MaxConcurrentRequests),
	}
	s.busUp.Store(true)
	s.metrics.busUp.Set(1)
	if cfg.InMemoryFallback {
		s.metrics.inMemory.Set(1)
	}
	return s
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

// Run subscribes and serves until ctx ends, then flushes what is pending
// (within DrainTimeout) and the stats. HTTP is served by the caller with
// Handler.
func (s *Service) Run(ctx context.Context) error {
	channels := s.listenChannels()
	sub, err := s.bus.Subscribe(ctx, channels...)
	if err != nil {
		return err
	}
	s.subscribed.Store(true)
	s.cfg.Log.Info("Listening", "bus", s.bus.Kind(), "channels", len(channels), "prefix", s.cfg.Catalog.KeyPrefix, "mode", s.cfg.Catalog.Mode)

	var wg sync.WaitGroup
	wg.Go(func() {
		for d := range sub.C() {
			_ = s.Ingest(d.Channel, d.Payload)
		}
	})
	writerCtx, stopWriter := context.WithCancel(context.WithoutCancel(ctx))
	writerDone := make(chan struct{})
	go func() { defer close(writerDone); s.writeLoop(writerCtx, ctx.Done()) }()
	wg.Go(func() { s.statsLoop(ctx) })
	wg.Go(func() { s.pingLoop(ctx) })

	<-ctx.Done()
	s.subscribed.Store(false)
	_ = sub.Close()
	wg.Wait()
	// The writer drains what is pending until it is empty or time is up.
	select {
	case <-writerDone:
	case <-time.After(s.cfg.DrainTimeout):
		stopWriter()
		<-writerDone
	}
	stopWriter()
	if n := s.Pending(); n > 0 {
		s.cfg.Log.Error("Events not written to the bus at shutdown", "pending", n)
	}
	flushCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s.flushStats(flushCtx)
	return nil
}

// Ingest decodes one message from a channel and logs it, or counts and
// skips it when it is not an event (not JSON, not an object, too large).
// It returns the *messaging.InvalidError or ErrQueueFull.
func (s *Service) Ingest(channel string, payload []byte) error {
	now := time.Now().UTC()
	e, err := s.cfg.Catalog.DecodeEvent(channel, payload, messaging.DecodeOptions{MaxBytes: s.cfg.MaxMessageBytes, Received: now})
	if err != nil {
		s.countInvalid(channel, err, payload)
		return err
	}
	// A Delivery's payload is the receiver's own (both buses copy), so
	// the queue keeps it without a copy.
	_, err = s.Accept(channel, []messaging.Event{e}, now)
	return err
}

// Accept logs events received at now, in order: one line each to the
// output, then into the queue for the bus. All of them are taken, or none
// when the queue has no room (which is counted as overflow).
func (s *Service) Accept(channel string, events []messaging.Event, now time.Time) ([]string, error) {
	entries := make([]messaging.LogEntry, len(events))
	for i, e := range events {
		entries[i] = messaging.LogEntry{
			ID:      s.instance + "-" + strconv.FormatUint(s.seq.Add(1), 10),
			Channel: channel, LoggedAt: now, Event: e,
		}
	}
	s.mu.Lock()
	if len(s.pending)+len(entries) > s.cfg.PendingLimit {
		s.mu.Unlock()
		s.metrics.overflow.Add(float64(len(entries)))
		s.cfg.Log.Error("Pending queue full: events refused", "channel", channel, "events", len(entries), "limit", s.cfg.PendingLimit)
		return nil, ErrQueueFull
	}
	s.pending = append(s.pending, entries...)
	st := s.stats[channel]
	st.Messages += int64(len(entries))
	for _, e := range events {
		if e.Nonconforming != "" {
			st.Nonconforming++
		}
	}
	st.LastMessageTime = now
	s.stats[channel] = st
	n := len(s.pending)
	s.writeLines(entries) // under mu: lines come out in queue order
	s.mu.Unlock()

	s.metrics.pending.Set(float64(n))
	s.metrics.messages.WithLabelValues(channel).Add(float64(len(entries)))
	ids := make([]string, len(entries))
	for i, e := range entries {
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
	return ids, nil
}

func (s *Service) writeLines(entries []messaging.LogEntry) {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	for _, e := range entries {
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

// Pending is how many events wait for the bus.
func (s *Service) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending)
}

// writeLoop writes pending events to the bus in order, batch by batch. A
// failed batch stays at the head of the queue and is retried with backoff;
// before a retry, entries that did reach the bus (the reply was lost) are
// dropped from it, so that none is written twice. It returns when stop is
// closed and the queue is empty, or when ctx ends.
func (s *Service) writeLoop(ctx context.Context, stop <-chan struct{}) {
	backoff := 100 * time.Millisecond
	failed := false
	for {
		s.mu.Lock()
		n := min(len(s.pending), s.cfg.BatchSize)
		batch := append([]messaging.LogEntry(nil), s.pending[:n]...)
		s.mu.Unlock()
		if n == 0 {
			select {
			case <-s.notify:
				continue
			case <-stop:
				return
			case <-ctx.Done():
				return
			}
		}
		if failed {
			ids, err := s.bus.RecentIDs(ctx, 2*n+64)
			if err == nil {
				done := 0
				for done < n && ids[batch[done].ID] {
					done++
				}
				s.pop(done)
				batch = batch[done:]
				if len(batch) == 0 {
					failed = false
					continue
				}
			}
		}
		start := time.Now()
		err := s.bus.Record(ctx, batch)
		s.metrics.recordDuration.Observe(time.Since(start).Seconds())
		if err == nil {
			s.pop(len(batch))
			if failed || s.wasDown.Swap(false) {
				s.cfg.Log.Info("Bus is back: pending events written", "pending", s.Pending())
			}
			failed = false
			backoff = 100 * time.Millisecond
			continue
		}
		s.metrics.writeErrors.Inc()
		if !failed {
			s.cfg.Log.Error("Writing events to the bus failed; they wait in the queue and are retried", "error", err, "pending", s.Pending())
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

func (s *Service) pop(n int) {
	s.mu.Lock()
	s.pending = s.pending[n:]
	if len(s.pending) == 0 {
		s.pending = nil // let the backing array go after a long outage
	}
	left := len(s.pending)
	s.mu.Unlock()
	s.metrics.pending.Set(float64(left))
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
	showWindow := len(windows) > 0 || s.windowShown
	s.mu.Unlock()
	if len(delta) == 0 && !showWindow {
		return
	}
	u := messaging.StatsUpdate{Counters: delta, WindowLength: s.cfg.HealthWindow, At: now}
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
	case !s.subscribed.Load():
		return false, "not subscribed"
	case !s.busUp.Load() && s.cfg.Catalog.Mode == messaging.ModeLive:
		return false, "Redis unreachable: Redis is required for live trading"
	}
	return true, fmt.Sprintf("ok: mode=%s bus=%s pending=%d", s.cfg.Catalog.Mode, bus, s.Pending())
}
