package controllers

import (
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/redisserver"
)

// TestSentinel_AFailoverWithinTheLossThresholdIsNotALoss: a Live strategy
// on three real Sentinels (master down after 2 s) with lossThreshold 20s.
// Its master is SIGKILLed; Sentinel promotes a replica; the strategy is
// never Halted, its status names the new master, and it ends Ready.
func TestSentinel_AFailoverWithinTheLossThresholdIsNotALoss(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	grp, err := redisserver.StartSentinelGroup(2, 3, redisserver.MinSentinelDownAfter)
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(grp.Close)
	runningLive(g, ns, "sent", "", func(s *stratv1.Strategy) {
		s.Spec.Redis.Address = ""
		s.Spec.Redis.Topology = stratv1.TopologySentinel
		s.Spec.Redis.Addresses = grp.SentinelAddrs()
		s.Spec.Redis.SentinelMasterName = redisserver.SentinelMaster
		s.Spec.Redis.LossThreshold = &metav1.Duration{Duration: 20 * time.Second}
		s.Spec.Engine = liveEngine()
	})
	oldMaster := grp.Master.Addr
	g.Eventually(func(g Gomega) {
		g.Expect(getStrategy(g, ns, "sent").Status.Redis.Endpoint).To(HavePrefix(oldMaster + " (master stratops, via Sentinels "))
	}, timeout, interval).Should(Succeed())
	killed := time.Now()
	g.Expect(grp.Master.Kill()).To(Succeed())
	var recovered time.Duration
	for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		s := getStrategy(g, ns, "sent")
		g.Expect(s.Status.Phase).NotTo(Equal(stratv1.PhaseHalted), "halted %s after the kill: %v", time.Since(killed), condition(s, stratv1.ConditionRedisReady))
		ep := s.Status.Redis.Endpoint
		if recovered == 0 && ep != "" && !strings.HasPrefix(ep, oldMaster) && s.Status.Redis.ConsecutiveFailures == 0 {
			recovered = time.Since(killed)
		}
	}
	g.Expect(recovered).NotTo(BeZero(), "the status never named a new master")
	t.Logf("master SIGKILLed; the probes passed on the promoted replica %s later, and the strategy was never Halted", recovered.Round(100*time.Millisecond))
	s := getStrategy(g, ns, "sent")
	g.Expect(s.Status.Phase).To(Equal(stratv1.PhaseRunning))
	g.Expect(condition(s, stratv1.ConditionReady).Status).To(Equal(metav1.ConditionTrue))
	g.Expect(hasEvent(g, ns, "sent", corev1.EventTypeWarning, stratv1.ReasonRedisLost)).To(BeFalse())
}
