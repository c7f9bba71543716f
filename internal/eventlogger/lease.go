package eventlogger

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratops/stratops/internal/eventlog"
	"github.com/stratops/stratops/pkg/messaging"
)

// leaser is a bus with the lease (Redis): with it, exactly one replica
// records what the channels carry.
type leaser interface {
	AcquireLease(ctx context.Context, value string, ttl time.Duration) (held bool, holder string, err error)
	ReleaseLease(ctx context.Context, value string) error
	LeaseHolder(ctx context.Context) (string, error)
	RecordFenced(ctx context.Context, entries []eventlog.LogEntry, fence string) error
	HistorySince(ctx context.Context, t time.Time) ([]eventlog.LogEntry, error)
}

// leadership is this replica's part in the lease, when the bus has one:
// whether it leads, who does, and as a standby what it heard within its
// window. mode orders ingest against taking over and stepping down; mu
// guards the window, the holder and the gap found at start.
type leadership struct {
	// leaser is nil on a bus without a lease (memory: one process).
	leaser leaser
	// value is this replica's lease value ("<token>|<holder>").
	value  string
	leader atomic.Bool
	mode   sync.RWMutex

	mu       sync.Mutex
	heard    []windowed
	holder   string
	startGap *messaging.Gap
	// holes are the standby's own subscription gaps: what it may have
	// missed of what the leader wrote, or did not.
	holes []messaging.Gap
	// othersListening is set at start when another replica's heartbeat
	// was fresh: this one then defers to it for the lease (youngDefer).
	othersListening atomic.Bool
	// subscribed is when this replica's subscription began; seenHeld the
	// last time it saw another value hold the lease. A takeover with
	// seenHeld-LeaseTTL before subscribed has a hole: the former holder
	// may have stopped hearing as early as its last renewal, which was
	// after seenHeld-LeaseTTL, and this one heard nothing before
	// subscribed.
	subscribed, seenHeld time.Time
}

// windowed is a message a standby heard and keeps for its window.
type windowed struct {
	channel string
	payload []byte
	at      time.Time
}

// messageDigest is a pub/sub message's identity within the standby
// window: its channel and the SHA-256 of its payload.
func messageDigest(channel string, payload []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(channel))
	h.Write([]byte{0})
	h.Write(payload)
	var d [32]byte
	copy(d[:], h.Sum(nil))
	return d
}

func newLeaseValue(holder string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:]) + "|" + holder
}

// holderOf is the holder part of a lease value.
func holderOf(v string) string { return eventlog.LeaseHolderName(v) }

// Leader reports whether this replica records the channels' messages, and
// which replica does when known.
func (s *Service) Leader() (bool, string) {
	l := &s.lease
	if l.leaser == nil {
		return true, s.cfg.Holder
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.leader.Load(), holderOf(l.holder)
}

// youngDefer is how long a replica that starts beside another listening
// one leaves the lease to it: the time a leader that died can have held
// the lease unrenewed (its TTL) and a poll. A leader's container killed
// and restarted in the same pod would otherwise race the standby for the
// lease, and win half the time with a window that starts after the kill:
// what was published in between, which the standby heard, would be lost
// and reported nowhere. Waiting loses nothing: a replica keeps a window
// from its subscription and logs it when it takes over.
func youngDefer(ttl time.Duration) time.Duration { return ttl + ttl/3 }

// leaseLoop takes the lease when it is free and keeps it, every third of
// its TTL. A replica that finds another holding it stands by; one that
// started beside another listening replica first leaves the lease to it
// for youngDefer.
func (s *Service) leaseLoop(ctx context.Context) {
	l := &s.lease
	t := time.NewTicker(s.cfg.LeaseTTL / 3)
	defer t.Stop()
	var deferUntil time.Time
	if l.othersListening.Load() {
		deferUntil = time.Now().Add(youngDefer(s.cfg.LeaseTTL))
	}
	for {
		lctx, cancel := context.WithTimeout(ctx, s.cfg.LeaseTTL/3)
		var held bool
		var holder string
		var err error
		if time.Now().Before(deferUntil) {
			// Deferring: who holds it, without taking it.
			holder, err = l.leaser.LeaseHolder(lctx)
			err = cmp.Or(err, errNotHeld)
		} else {
			held, holder, err = l.leaser.AcquireLease(lctx, l.value, s.cfg.LeaseTTL)
		}
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, errNotHeld) && holder != "":
			s.seeHolder(holder)
		case err != nil:
			// Redis unreachable: nobody writes; the fence keeps it so.
		case held && !l.leader.Load():
			s.takeOver(ctx)
		case !held:
			s.seeHolder(holder)
			if l.leader.Load() {
				s.stepDown(holder)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// errNotHeld marks a look at the lease that did not try to take it.
var errNotHeld = errors.New("eventlogger: lease not tried")

// seeHolder records that another value holds the lease, now.
func (s *Service) seeHolder(holder string) {
	l := &s.lease
	l.mu.Lock()
	defer l.mu.Unlock()
	l.holder = holder
	if holder != l.value {
		l.seenHeld = time.Now()
	}
}

// takeOver makes this replica the one that records. What it heard as a
// standby within its window and the history lacks (the former leader had
// not written it) is logged first, in order, without duplicates: a
// message is its channel and payload digest, counted, so that two equal
// messages are two.
func (s *Service) takeOver(ctx context.Context) {
	l := &s.lease
	l.mode.Lock()
	defer l.mode.Unlock()
	l.mu.Lock()
	window := l.heard
	l.heard = nil
	l.holder = l.value
	startGap := l.startGap
	l.startGap = nil
	holes := l.holes
	l.holes = nil
	if from := l.seenHeld.Add(-s.cfg.LeaseTTL); startGap == nil && !l.seenHeld.IsZero() && from.Before(l.subscribed) {
		// The former holder may have stopped hearing before this one
		// began (a leader's container restarted in its pod, taking the
		// lease back from nobody): what was published then is lost.
		startGap = &messaging.Gap{Start: from, End: l.subscribed, Channels: s.listenChannels()}
	}
	l.mu.Unlock()
	// Leader first, so that the writer writes what the window gives.
	l.leader.Store(true)
	s.metrics.leader.Set(1)
	recovered := s.recoverWindow(ctx, window)
	s.metrics.takeovers.Inc()
	s.metrics.recovered.Add(float64(recovered))
	s.cfg.Log.Info("Took the lease: this replica records the channels", "holder", s.cfg.Holder,
		"window", len(window), "recovered", recovered)
	if startGap != nil {
		s.recordGap(*startGap)
	}
	// The standby's own holes within the window it recovered from are
	// gaps of the history now: what was published then and the former
	// leader had not written is lost, and said so.
	now := time.Now()
	for _, g := range holes {
		if now.Sub(g.End) <= s.cfg.StandbyWindow {
			s.logGap(g) // its seconds were counted when it happened
		}
	}
}

// recoverWindow logs what a standby heard within its window that the
// history lacks, and returns how many that was.
func (s *Service) recoverWindow(ctx context.Context, window []windowed) int {
	if len(window) == 0 {
		return 0
	}
	var hist []eventlog.LogEntry
	var err error
	for range 3 {
		hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		// From before the window's start, by more than the clocks of this
		// host and Redis's (whose times the stream's IDs are) are likely
		// to differ.
		hist, err = s.lease.leaser.HistorySince(hctx, window[0].at.Add(-historySlack))
		cancel()
		if err == nil {
			break
		}
	}
	if err != nil {
		s.cfg.Log.Error("Taking over: the history cannot be read, so the window is logged whole (messages the former leader wrote may be logged twice)", "error", err)
	}
	seen := map[[32]byte]int{}
	for _, e := range hist {
		seen[messageDigest(e.Channel, e.Event.Payload)]++
	}
	recovered := 0
	for _, w := range window {
		d := messageDigest(w.channel, w.payload)
		if seen[d] > 0 {
			seen[d]--
			continue
		}
		recovered++
		_ = s.ingestAt(w.channel, w.payload, w.at)
	}
	return recovered
}

// stepDown makes this replica a standby: another holds the lease.
func (s *Service) stepDown(holder string) {
	s.lease.mode.Lock()
	defer s.lease.mode.Unlock()
	s.lease.leader.Store(false)
	s.metrics.leader.Set(0)
	s.cfg.Log.Warn("Lost the lease: standing by; channel events not yet written are left to the new leader, which heard them too",
		"holder", holderOf(holder))
}

// holdGap keeps a standby's own subscription gap for StandbyWindow, to be
// recorded if this replica takes over.
func (s *Service) holdGap(g messaging.Gap) {
	l := &s.lease
	l.mu.Lock()
	defer l.mu.Unlock()
	kept := l.holes[:0]
	for _, h := range l.holes {
		if time.Since(h.End) <= s.cfg.StandbyWindow {
			kept = append(kept, h)
		}
	}
	l.holes = append(kept, g)
}

// historySlack is how much history before the window a takeover reads.
const historySlack = 10 * time.Second

// hold keeps a message a standby heard, for StandbyWindow.
func (s *Service) hold(channel string, payload []byte, now time.Time) {
	l := &s.lease
	l.mu.Lock()
	defer l.mu.Unlock()
	l.heard = append(l.heard, windowed{channel: channel, payload: payload, at: now})
	cut := 0
	for cut < len(l.heard) && now.Sub(l.heard[cut].at) > s.cfg.StandbyWindow {
		cut++
	}
	if over := len(l.heard) - cut - s.cfg.PendingLimit; over > 0 {
		cut += over
	}
	if cut > 0 {
		l.heard = append([]windowed(nil), l.heard[cut:]...)
	}
}
