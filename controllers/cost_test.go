package controllers

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// TestCost_ALiveStrategyCostsTwoEventsToReadyAndNothingWhileHealthy
// counts, at the manager's client, what one Live Strategy without an
// engine costs from create to Ready, and over five probe rounds once
// healthy: at most two of its requests are Events (GatePassed and Ready:
// one per outcome a person acts on, none per child), and a healthy
// Strategy costs no request at all.
func TestCost_ALiveStrategyCostsTwoEventsToReadyAndNothingWhileHealthy(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	runningLive(g, ns, "cost", redisOpen.Addr, nil)
	toReady, total := managerRequests.in(ns)
	t.Logf("create to Ready: %d requests: %s", total, summary(toReady))
	g.Expect(toReady["POST events"]).To(BeNumerically("<=", 2), "events to Ready: %s", summary(toReady))

	time.Sleep(5 * time.Second) // five probe rounds at a 1 s interval
	after, total2 := managerRequests.in(ns)
	g.Expect(total2-total).To(BeZero(), "a healthy Strategy costs no request: before %s, after %s", summary(toReady), summary(after))
}
