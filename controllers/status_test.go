package controllers

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/eventlog"
	"github.com/stratops/stratops/internal/redistest"
)

// settled waits until a Strategy's status has not been written for a
// while, and returns its resourceVersion.
func settled(g Gomega, ns, name string) string {
	rv := getStrategy(g, ns, name).ResourceVersion
	quiet := time.Now()
	g.Eventually(func() bool {
		if now := getStrategy(g, ns, name).ResourceVersion; now != rv {
			rv, quiet = now, time.Now()
		}
		return time.Since(quiet) > 1500*time.Millisecond
	}, timeout, interval).Should(BeTrue())
	return rv
}

// TestStatus_AnIdleStrategyCostsNoWriteAcrossProbeRounds: probe rounds
// that change nothing but the probe time write nothing.
func TestStatus_AnIdleStrategyCostsNoWriteAcrossProbeRounds(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	runningLive(g, ns, "idle", redisOpen.Addr, nil) // probes every second
	rv := settled(g, ns, "idle")
	lastRound := func() time.Time {
		return reconciler.redisChecks().peek(types.NamespacedName{Namespace: ns, Name: "idle"}).roundAt
	}
	first := lastRound()
	time.Sleep(3500 * time.Millisecond)
	rounds := lastRound().Sub(first)
	g.Expect(rounds).To(BeNumerically(">=", 2*time.Second), "several probe rounds ran")
	g.Expect(getStrategy(g, ns, "idle").ResourceVersion).To(Equal(rv), "no status write over %s of probe rounds", rounds)
}

// TestStatus_SteadyTrafficCostsAtMostOneWritePerRefreshInterval: counters
// that move with traffic reach status at most once per refresh interval
// (while metrics follow every read-out).
func TestStatus_SteadyTrafficCostsAtMostOneWritePerRefreshInterval(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := newNamespace(t)
	srv := startRedis(t)
	runningLive(g, ns, "busy", srv.Addr, nil)
	rv := settled(g, ns, "busy")

	// A logger's traffic: the stats hash counts messages, 10 a second.
	bus := eventlog.NewRedisStore(redistest.Client(t, srv.Addr), eventlog.RedisStoreOptions{KeyPrefix: "busy:"})
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				_ = bus.WriteStats(ctx, eventlog.StatsUpdate{Counters: map[string]eventlog.ChannelStats{
					"position:updated": {Messages: 1, LastMessageTime: now},
				}})
			}
		}
	}()
	const window = 22 * time.Second
	writes := 0
	var seen int64
	for end := time.Now().Add(window); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		s := getStrategy(g, ns, "busy")
		if s.ResourceVersion != rv {
			rv = s.ResourceVersion
			writes++
			for _, c := range s.Status.Channels {
				if c.Name == "position:updated" {
					g.Expect(c.Messages).To(BeNumerically(">", seen), "each write carries newer counters")
					seen = c.Messages
					g.Expect(c.LastMessageTime).NotTo(BeNil())
				}
			}
		}
	}
	t.Logf("%d status writes in %s of steady traffic (refresh interval %s)", writes, window, testStatusRefresh)
	g.Expect(writes).To(BeNumerically(">=", 1), "counters are refreshed")
	g.Expect(writes).To(BeNumerically("<=", int(window/testStatusRefresh)+1), "at most one write per refresh interval")
	g.Expect(condition(getStrategy(g, ns, "busy"), stratv1.ConditionReady).Status).To(Equal(metav1.ConditionTrue))
}
