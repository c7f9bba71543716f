package controllers

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stratv1 "github.com/stratops/stratops/api/v1"
)

// TestReconcileRequest_IsHandledAndRecorded: writing
// stratops.dev/reconcile-requested-at (kubectl stratops reconcile) brings a
// reconcile at once, which records the value in
// status.lastHandledReconcileAt; a second request is recorded in turn, and
// a suspended Strategy records it too (it was handled: nothing to do).
func TestReconcileRequest_IsHandledAndRecorded(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	s := backtest(ns, "asked")
	g.Expect(k8sClient.Create(ctx, s)).To(Succeed())
	g.Eventually(func() int64 { return getStrategy(g, ns, "asked").Status.ObservedGeneration }, timeout, interval).
		Should(BeNumerically(">", 0))
	g.Expect(getStrategy(g, ns, "asked").Status.LastHandledReconcileAt).To(BeEmpty())

	request := func(at string) {
		cur := getStrategy(g, ns, "asked")
		before := cur.DeepCopy()
		if cur.Annotations == nil {
			cur.Annotations = map[string]string{}
		}
		cur.Annotations[stratv1.AnnotationReconcileRequestedAt] = at
		g.Expect(k8sClient.Patch(ctx, cur, client.MergeFrom(before))).To(Succeed())
		g.Eventually(func() string { return getStrategy(g, ns, "asked").Status.LastHandledReconcileAt }, timeout, interval).
			Should(Equal(at), "the request is handled and recorded")
	}
	request("2026-12-07T07:00:00Z")
	request("2026-12-07T07:00:05.123Z")

	cur := getStrategy(g, ns, "asked")
	before := cur.DeepCopy()
	cur.Spec.Suspend = true
	g.Expect(k8sClient.Patch(ctx, cur, client.MergeFrom(before))).To(Succeed())
	g.Eventually(func() stratv1.StrategyPhase { return getStrategy(g, ns, "asked").Status.Phase }, timeout, interval).
		Should(Equal(stratv1.PhaseSuspended))
	request("2026-12-07T07:01:00Z")
}
