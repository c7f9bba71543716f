package controllers

import (
	"context"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/redisserver"
)

// TestProbes_ASlowRedisStarvesNoOtherStrategy: twice as many Strategies as
// there are workers point at a TLS endpoint that accepts and never
// answers, with the longest dial timeout the API allows. Their checks hang
// off the workers, so a healthy Live Strategy whose Redis is killed is
// still halted within three probe intervals plus a few seconds.
func TestProbes_ASlowRedisStarvesNoOtherStrategy(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	hole, err := redisserver.StartBlackHole()
	g.Expect(err).NotTo(HaveOccurred())
	defer hole.Close()

	const holes = 8 // the suite's manager has 4 workers
	for i := range holes {
		s := liveOn(ns, fmt.Sprintf("hole-%d", i), hole.Addr, stratv1.RedisLossHalt)
		s.Spec.Redis.TLS = &stratv1.RedisTLSSpec{Enabled: true, InsecureSkipVerify: true}
		s.Spec.Redis.DialTimeout = &metav1.Duration{Duration: 10 * time.Second}
		g.Expect(k8sClient.Create(ctx, s)).To(Succeed())
	}
	g.Eventually(hole.Accepted, timeout, interval).Should(BeNumerically(">=", holes), "every hole Strategy is being probed")

	const probeInterval = 2 * time.Second
	srv := startRedis(t)
	runningLive(g, ns, "healthy", srv.Addr, func(s *stratv1.Strategy) {
		s.Spec.Engine = liveEngine()
		s.Spec.Redis.HealthCheckInterval = &metav1.Duration{Duration: probeInterval}
	})
	hanging := 0
	for i := range holes {
		if reconciler.redisChecks().peek(types.NamespacedName{Namespace: ns, Name: fmt.Sprintf("hole-%d", i)}).running {
			hanging++
		}
	}
	t.Logf("%d of %d hole Strategies have a check hanging when Redis is killed", hanging, holes)
	g.Expect(hanging).To(BeNumerically(">", 4), "more checks hang than there are workers")

	g.Expect(srv.Kill()).To(Succeed())
	killed := time.Now()
	// Its logger's readiness fails with its Redis (the kubelet's part):
	// the second opinion a loss needs.
	markUnavailable(g, ns, "healthy-eventlogger")
	bound := 3*probeInterval + 5*time.Second
	g.Eventually(func(g Gomega) {
		s := getStrategy(g, ns, "healthy")
		g.Expect(s.Status.Phase).To(Equal(stratv1.PhaseHalted))
		d := &appsv1.Deployment{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "healthy-engine"}, d)).To(Succeed())
		g.Expect(*d.Spec.Replicas).To(BeZero())
	}, bound, 50*time.Millisecond).Should(Succeed(), "halted within 3 probe intervals plus 5s")
	t.Logf("halted %s after its Redis was killed (probe interval %s, %d hanging Strategies, 4 workers)",
		time.Since(killed).Round(10*time.Millisecond), probeInterval, holes)

	// The holes report what hangs them, once their checks end.
	g.Eventually(func(g Gomega) {
		s := getStrategy(g, ns, "hole-0")
		g.Expect(s.Status.Phase).To(Equal(stratv1.PhaseGated))
		p := probe(s, "connect")
		g.Expect(p).NotTo(BeNil())
		g.Expect(p.Reason).To(Equal("Timeout"))
	}, timeout, interval).Should(Succeed())
}
