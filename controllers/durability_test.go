package controllers

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/redisprobe"
	"github.com/stratops/stratops/internal/redistest"
	"github.com/stratops/stratops/pkg/messaging"
)

// TestPrefix_ASecondStrategyOnTheSamePrefixIsStalledBeforeAnythingRollsOut:
// one Strategy owns a Redis, database and prefix, across namespaces.
func TestPrefix_ASecondStrategyOnTheSamePrefixIsStalledBeforeAnythingRollsOut(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	srv := startRedis(t)
	nsA, nsB := newNamespace(t), newNamespace(t)
	runningLive(g, nsA, "shared", srv.Addr, nil)
	owner := getStrategy(g, nsA, "shared")
	c := redistest.Client(t, srv.Addr)
	g.Expect(c.HGet(ctx, "shared:"+messaging.KeyChannelStats, messaging.StatsOwnerField).Val()).To(Equal(string(owner.UID)),
		"the stats hash carries its owner")
	g.Expect(c.TTL(ctx, "shared:"+redisprobe.OwnerKey).Val()).To(BeNumerically(">", 0), "the claim expires unless renewed")

	second := liveOn(nsB, "shared", srv.Addr, stratv1.RedisLossHalt)
	g.Expect(k8sClient.Create(ctx, second)).To(Succeed())
	g.Eventually(func(g Gomega) {
		s := getStrategy(g, nsB, "shared")
		st := condition(s, stratv1.ConditionStalled)
		g.Expect(st).NotTo(BeNil())
		g.Expect(st.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(st.Reason).To(Equal(stratv1.ReasonPrefixConflict))
		g.Expect(st.Message).To(ContainSubstring("spec.redis.keyPrefix \"shared:\""))
		g.Expect(st.Message).To(ContainSubstring(nsA + "/shared"))
		g.Expect(hasEvent(g, nsB, "shared", corev1.EventTypeWarning, stratv1.ReasonPrefixConflict)).To(BeTrue())
	}, timeout, interval).Should(Succeed())
	g.Expect(notFound(nsB, "shared-eventlogger", &appsv1.Deployment{})).To(BeTrue(), "nothing of the second rolls out")
	// The owner runs on, its stats its own.
	g.Consistently(func(g Gomega) {
		g.Expect(getStrategy(g, nsA, "shared").Status.Phase).To(Equal(stratv1.PhaseRunning))
	}, 2*time.Second, interval).Should(Succeed())
	g.Expect(c.HGet(ctx, "shared:"+messaging.KeyChannelStats, messaging.StatsOwnerField).Val()).To(Equal(string(owner.UID)))
}

// TestStatus_AGapInTheLoggersSubscriptionShowsAsPossibleLoss: the gaps the
// logger counts reach status.channels, and ChannelsHealthy says
// "possible loss" while the gap is recent.
func TestStatus_AGapInTheLoggersSubscriptionShowsAsPossibleLoss(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	srv := startRedis(t)
	runningLive(g, ns, "gappy", srv.Addr, nil)
	bus := messaging.NewRedisBus(redistest.Client(t, srv.Addr), messaging.RedisBusOptions{KeyPrefix: "gappy:"})
	end := time.Now().UTC()
	g.Expect(bus.WriteStats(ctx, messaging.StatsUpdate{Counters: map[string]messaging.ChannelStats{
		"position:updated": {Gaps: 1, LastGapTime: end, Dropped: 3},
		"risk:calculated":  {Gaps: 1, LastGapTime: end},
	}})).To(Succeed())
	g.Eventually(func(g Gomega) {
		s := getStrategy(g, ns, "gappy")
		var ch *stratv1.ChannelStatus
		for i := range s.Status.Channels {
			if s.Status.Channels[i].Name == "position:updated" {
				ch = &s.Status.Channels[i]
			}
		}
		g.Expect(ch).NotTo(BeNil())
		g.Expect(ch.Gaps).To(Equal(int64(1)))
		g.Expect(ch.DroppedMessages).To(Equal(int64(3)))
		g.Expect(ch.LastGapTime).NotTo(BeNil())
		c := condition(s, stratv1.ConditionChannelsHealthy)
		g.Expect(c.Message).To(ContainSubstring("possible loss"))
		g.Expect(c.Message).To(ContainSubstring("on 2 channels"))
	}, timeout, interval).Should(Succeed())
}
