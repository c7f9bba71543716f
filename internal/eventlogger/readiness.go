package eventlogger

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/stratops/stratops/internal/eventlog"
	"github.com/stratops/stratops/pkg/messaging"
)

// readiness is what /readyz says, from what the other parts report: the
// bus answering pings, the subscription, the drain at shutdown, and a
// write Redis refuses for good. Lock-free: each fact is an atomic.
type readiness struct {
	busUp      atomic.Bool
	subscribed atomic.Bool
	// wasDown: the bus was unreachable since the writer last wrote.
	wasDown atomic.Bool
	// stopping: ingest is closed for the drain at shutdown.
	stopping atomic.Bool
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

// noteWriteError keeps a permanent write error for readiness and metrics,
// and logs it when it is new.
func (s *Service) noteWriteError(err error) {
	reason := eventlog.PermanentReason(err)
	if reason == "" {
		return
	}
	wf := &writeFailure{Reason: reason, Message: err.Error(), Since: time.Now()}
	old := s.ready.writeFailure.Swap(wf)
	if old != nil && old.Reason == reason && old.Message == wf.Message {
		wf.Since = old.Since
		return
	}
	s.metrics.setWriteFailing(reason)
	s.cfg.Log.Error("Redis refuses the history's writes: nothing reaches the history until this is fixed in Redis; not ready",
		"reason", reason, "error", err.Error())
}

// noteWritten clears what a failed write left, once a write succeeds.
func (s *Service) noteWritten(hadFailed bool) {
	if hadFailed || s.ready.wasDown.Swap(false) {
		s.cfg.Log.Info("Bus is back: pending events written", "pending", s.Pending())
	}
	if s.ready.writeFailure.Swap(nil) != nil {
		s.metrics.setWriteFailing("")
		s.cfg.Log.Info("Redis takes the history's writes again")
	}
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
	if s.ready.busUp.Swap(up) != up {
		if up {
			s.cfg.Log.Info("Bus reachable again", "bus", s.bus.Kind())
		} else {
			s.ready.wasDown.Store(true)
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
	case s.ready.stopping.Load():
		return false, "stopping: draining what waits for the history"
	case !s.ready.subscribed.Load():
		return false, "not subscribed"
	case !s.ready.busUp.Load() && s.cfg.Catalog.Mode == messaging.ModeLive:
		return false, "Redis unreachable: Redis is required for live trading"
	}
	if wf := s.ready.writeFailure.Load(); wf != nil {
		return false, fmt.Sprintf("%s: Redis refuses the history's writes since %s: %s", wf.Reason, wf.Since.UTC().Format(time.RFC3339), wf.Message)
	}
	spool := "off"
	if sp := s.queue.spool; sp != nil {
		spool = fmt.Sprintf("%d/%d bytes", sp.Bytes(), sp.MaxBytes())
	}
	role := "leader"
	if lead, holder := s.Leader(); !lead {
		role = "standby (leader: " + holder + ")"
	}
	return true, fmt.Sprintf("ok: mode=%s bus=%s pending=%d spool=%s role=%s", s.cfg.Catalog.Mode, bus, s.Pending(), spool, role)
}
