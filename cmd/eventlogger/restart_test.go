package main

import (
	"context"
	"encoding/json"
	"io"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stratops/stratops/internal/eventlog"
	"github.com/stratops/stratops/internal/redisserver"
	"github.com/stratops/stratops/internal/redistest"
	"github.com/stratops/stratops/pkg/messaging"
)

// publisher publishes on position:updated at about 1,000 messages a
// second until stopped, and keeps when Redis took each sequence number.
type publisher struct {
	mu   sync.Mutex
	took map[int]time.Time
	stop chan struct{}
	done chan struct{}
}

func publish(c *redis.Client, prefix string) *publisher {
	p := &publisher{took: map[int]time.Time{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for seq := 0; ; seq++ {
			select {
			case <-p.stop:
				return
			case <-time.After(time.Millisecond):
			}
			at := time.Now()
			body, _ := messaging.Envelope(at, "position_monitor", "updated", map[string]any{"seq": seq})
			if c.Publish(context.Background(), prefix+"position:updated", body).Err() == nil {
				p.mu.Lock()
				p.took[seq] = at
				p.mu.Unlock()
			}
		}
	}()
	return p
}

func (p *publisher) halt() map[int]time.Time {
	close(p.stop)
	<-p.done
	return p.took
}

// settledHistory waits until the history stops growing and counts, of
// what Redis took, the messages lost (and of those, outside every gap the
// loggers reported) and duplicated.
func settledHistory(t *testing.T, c *redis.Client, prefix string, took map[int]time.Time) (lost, outside, dup, gaps int) {
	t.Helper()
	ctx := context.Background()
	hist := prefix + messaging.KeyEventsHistory
	for n, stable := int64(-1), 0; stable < 3; time.Sleep(500 * time.Millisecond) {
		m := c.XLen(ctx, hist).Val()
		if m == n {
			stable++
		} else {
			n, stable = m, 0
		}
	}
	entries, err := c.XRange(ctx, hist, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]int{}
	var spans []redistest.Span
	for _, e := range entries {
		var md struct{ Metadata json.RawMessage }
		raw, _ := e.Values["message"].(string)
		_ = json.Unmarshal([]byte(raw), &md)
		switch e.Values["channel"] {
		case "position:updated":
			var m struct{ Seq int }
			_ = json.Unmarshal(md.Metadata, &m)
			seen[m.Seq]++
		case "gap":
			var g struct{ Start, End string }
			_ = json.Unmarshal(md.Metadata, &g)
			start, _ := messaging.ParseTimestamp(g.Start)
			end, _ := messaging.ParseTimestamp(g.End)
			spans = append(spans, redistest.Span{Start: start, End: end})
		}
	}
	lost, outside, dup = redistest.Tally(took, seen, spans)
	return lost, outside, dup, len(spans)
}

// TestReplicas_ALeaderRestartedInItsPodLeavesTheLeaseToTheStandby: two
// replicas at 1,000 msg/s; the leader is SIGKILLed and started again at
// once under the same pod name (a container restarted by the kubelet).
// The standby heard everything since the kill; the restarted one did not,
// and leaves the lease to it: nothing is lost or duplicated. Then the
// only replica left is killed and restarted the same way: what it missed
// is in a gap it reports.
func TestReplicas_ALeaderRestartedInItsPodLeavesTheLeaseToTheStandby(t *testing.T) {
	srv, err := redisserver.Start(redisserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	const prefix = "restart:"
	c := redistest.Client(t, srv.Addr)
	lease := func() string {
		return eventlog.LeaseHolderName(c.Get(context.Background(), eventlog.LeaseKey(prefix)).Val())
	}
	a, _ := startLoggerEnv(t, srv.Addr, t.TempDir(), prefix, io.Discard, []string{"STRATOPS_POD_NAME=logger-a"})
	waitFor(t, "logger-a leads", func() bool { return lease() == "logger-a" })
	b, _ := startLoggerEnv(t, srv.Addr, t.TempDir(), prefix, io.Discard, []string{"STRATOPS_POD_NAME=logger-b"})
	time.Sleep(2 * time.Second) // b's window is older than a's last renewal
	p := publish(c, prefix)
	time.Sleep(time.Second)
	_ = a.Process.Signal(syscall.SIGKILL)
	_, _ = a.Process.Wait()
	a2, _ := startLoggerEnv(t, srv.Addr, t.TempDir(), prefix, io.Discard, []string{"STRATOPS_POD_NAME=logger-a"})
	waitFor(t, "logger-b leads", func() bool { return lease() == "logger-b" })
	time.Sleep(2 * time.Second)
	took := p.halt()
	lost, outside, dup, gaps := settledHistory(t, c, prefix, took)
	t.Logf("leader SIGKILLed and restarted in place beside a standby: %d messages taken by Redis, %d lost (%d outside the %d reported gaps), %d duplicated; the lease went to %s",
		len(took), lost, outside, gaps, dup, lease())
	if lost > 0 || dup > 0 {
		t.Fatalf("%d lost and %d duplicated; want none: the standby heard them all", lost, dup)
	}

	// logger-b alone now (logger-a's second run, a standby, stopped):
	// kill b and start it again at once.
	_ = a2.Process.Signal(syscall.SIGTERM)
	_, _ = a2.Process.Wait()
	c.Del(context.Background(), prefix+messaging.KeyEventsHistory)
	p = publish(c, prefix)
	time.Sleep(time.Second)
	_ = b.Process.Signal(syscall.SIGKILL)
	_, _ = b.Process.Wait()
	startLoggerEnv(t, srv.Addr, t.TempDir(), prefix, io.Discard, []string{"STRATOPS_POD_NAME=logger-b"})
	time.Sleep(6 * time.Second)
	took = p.halt()
	lost, outside, dup, gaps = settledHistory(t, c, prefix, took)
	t.Logf("then the leader SIGKILLed and restarted in place: %d messages taken by Redis, %d lost (%d outside the %d reported gaps), %d duplicated; the lease went to %s",
		len(took), lost, outside, gaps, dup, lease())
	if outside > 0 || dup > 0 {
		t.Fatalf("%d lost outside a reported gap and %d duplicated; want none", outside, dup)
	}
}
