package controllers

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stratv1 "github.com/stratops/stratops/api/v1"
)

// TestCost_ALiveStrategyCostsTwoEventsToReadyAndNothingWhileHealthy
// counts, at the manager's client, what one Live Strategy without an
// engine costs from create to Ready, and over five probe rounds once
// healthy: at most a dozen requests, at most two of them Events
// (GatePassed and Ready: one per outcome a person acts on, none per
// child), no read that bypasses the cache (each child is made by a
// create-only apply), and a healthy Strategy costs no request at all.
func TestCost_ALiveStrategyCostsTwoEventsToReadyAndNothingWhileHealthy(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	runningLive(g, ns, "cost", redisOpen.Addr, nil)
	toReady, total := managerRequests.In(ns)
	t.Logf("create to Ready: %d requests: %s", total, summary(toReady))
	g.Expect(toReady["POST events"]).To(BeNumerically("<=", 2), "events to Ready: %s", summary(toReady))
	g.Expect(total).To(BeNumerically("<=", 12), "requests to Ready: %s", summary(toReady))
	for what, n := range toReady {
		g.Expect(strings.HasPrefix(what, "GET ") || strings.HasPrefix(what, "LIST ")).To(BeFalse(), "%d uncached reads %q: %s", n, what, summary(toReady))
	}

	time.Sleep(5 * time.Second) // five probe rounds at a 1 s interval
	after, total2 := managerRequests.In(ns)
	g.Expect(total2-total).To(BeZero(), "a healthy Strategy costs no request: before %s, after %s", summary(toReady), summary(after))
}

// TestCost_AReferencedSecretIsReadOnceAndAgainOnlyWhenItChanges: a
// Strategy with a password Secret reads it from the API server once on
// the way to Ready and not again while it is healthy (its cached metadata
// says it is unchanged); a change of the Secret is read once more.
func TestCost_AReferencedSecretIsReadOnceAndAgainOnlyWhenItChanges(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	createSecret(t, ns, "redis-auth", testPassword)
	runningLive(g, ns, "cost", redisAuth.Addr, func(s *stratv1.Strategy) {
		s.Spec.Redis.PasswordSecretRef = &stratv1.SecretKeySelector{Name: "redis-auth", Key: "password"}
	})
	toReady, total := managerRequests.In(ns)
	g.Expect(toReady["GET secrets"]).To(Equal(1), "reads of the Secret to Ready: %s", summary(toReady))

	time.Sleep(5 * time.Second) // five probe rounds at a 1 s interval
	healthy, total2 := managerRequests.In(ns)
	g.Expect(total2-total).To(BeZero(), "a healthy Strategy with a Secret costs no request: before %s, after %s", summary(toReady), summary(healthy))

	sec := &corev1.Secret{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "redis-auth"}, sec)).To(Succeed())
	sec.Labels["team"] = "desk-a"
	g.Expect(k8sClient.Update(ctx, sec)).To(Succeed())
	g.Eventually(func(g Gomega) {
		after, _ := managerRequests.In(ns)
		g.Expect(after["GET secrets"]).To(Equal(2), "the changed Secret is read once more: %s", summary(after))
	}, timeout, interval).Should(Succeed())
	g.Consistently(func(g Gomega) {
		after, _ := managerRequests.In(ns)
		g.Expect(after["GET secrets"]).To(Equal(2), "and not again: %s", summary(after))
	}, 3*time.Second, 500*time.Millisecond).Should(Succeed())
}

// TestCost_ACreateThatFindsSomeoneElsesObjectStallsAndLeavesItAlone: the
// children are made by create-only applies, without reading first. One
// that finds an object of its name the Strategy does not own (a Service
// someone made, a Secret) stalls the Strategy with NameConflict, naming
// it, and the object is left as it was: no field of it is the operator's.
func TestCost_ACreateThatFindsSomeoneElsesObjectStallsAndLeavesItAlone(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	for name, obj := range map[string]client.Object{
		"svc":   &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "svc-eventlogger"}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 1234}}}},
		"token": &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "token-eventlogger-token"}, StringData: map[string]string{"token": "theirs"}},
	} {
		g.Expect(k8sClient.Create(ctx, obj)).To(Succeed())
		s := liveOn(ns, name, redisOpen.Addr, stratv1.RedisLossHalt)
		s.Spec.Redis.KeyPrefix = ns + "-" + name + ":"
		g.Expect(k8sClient.Create(ctx, s)).To(Succeed())
		g.Eventually(func(g Gomega) {
			st := condition(getStrategy(g, ns, name), stratv1.ConditionStalled)
			g.Expect(st).NotTo(BeNil())
			g.Expect(st.Reason).To(Equal(stratv1.ReasonNameConflict))
			g.Expect(st.Message).To(ContainSubstring(fmt.Sprintf("%q exists and is not owned by this Strategy", obj.GetName())))
		}, timeout, interval).Should(Succeed())
		after := obj.DeepCopyObject().(client.Object)
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), after)).To(Succeed())
		g.Expect(after.GetResourceVersion()).To(Equal(obj.GetResourceVersion()), "%s %s was written", name, obj.GetName())
		for _, mf := range after.GetManagedFields() {
			g.Expect(mf.Manager).NotTo(Equal(fieldManager), "%s %s has fields the operator owns", name, obj.GetName())
		}
	}
}

// TestCost_AHealthyReconcileAllocatesAtMost800: one reconcile of a
// healthy, rolled-out Live Strategy between probe rounds (what
// BenchmarkReconcile_HealthyStrategy times) allocates at most 800 objects:
// its children found in shape are not built again, the cache's objects
// are read without a copy and the Strategy copied once, the catalog is
// made and encoded once per generation and no metric series is written
// (they are made at scrape time). The count is the process's, so the
// manager's other work shows in it: the least of three batches is the one
// compared.
func TestCost_AHealthyReconcileAllocatesAtMost800(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	runningLive(g, ns, "allocs", redisOpen.Addr, betweenRounds)
	req := ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: "allocs"}}
	_, _ = reconciler.Reconcile(ctx, req)
	least := math.Inf(1)
	for range 3 {
		least = min(least, testing.AllocsPerRun(100, func() {
			if _, err := reconciler.Reconcile(ctx, req); err != nil {
				t.Fatal(err)
			}
		}))
	}
	t.Logf("a healthy reconcile: %.0f allocations", least)
	g.Expect(least).To(BeNumerically("<=", 800))
}
