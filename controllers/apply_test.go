package controllers

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/pkg/messaging"
)

func envValue(c corev1.Container, name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value, true
		}
	}
	return "", false
}

// TestApply_ForeignFieldsStayWhatTheOperatorOwnsComesBack: a
// `kubectl rollout restart` annotation and a label a policy engine adds to
// the logger Deployment survive reconciles (the API server's field
// ownership, not our merge code, keeps them); an image or an environment
// value changed by hand is put back.
func TestApply_ForeignFieldsStayWhatTheOperatorOwnsComesBack(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	g.Expect(k8sClient.Create(ctx, backtest(ns, "owned"))).To(Succeed())
	key := client.ObjectKey{Namespace: ns, Name: "owned-eventlogger"}
	d := &appsv1.Deployment{}
	g.Eventually(func() error { return k8sClient.Get(ctx, key, d) }, timeout, interval).Should(Succeed())
	image := d.Spec.Template.Spec.Containers[0].Image

	g.Eventually(func() error {
		d := &appsv1.Deployment{}
		if err := k8sClient.Get(ctx, key, d); err != nil {
			return err
		}
		d.Spec.Template.Annotations["kubectl.kubernetes.io/restartedAt"] = "2026-11-26T10:00:00Z"
		d.Labels["policy.example.com/owner"] = "desk-a"
		c := &d.Spec.Template.Spec.Containers[0]
		c.Image = "someone-elses:1"
		for i := range c.Env {
			if c.Env[i].Name == messaging.EnvMode {
				c.Env[i].Value = "Live"
			}
		}
		return k8sClient.Update(ctx, d, client.FieldOwner("kubectl-edit"))
	}, timeout, interval).Should(Succeed())

	g.Eventually(func(g Gomega) {
		d := &appsv1.Deployment{}
		g.Expect(k8sClient.Get(ctx, key, d)).To(Succeed())
		c := d.Spec.Template.Spec.Containers[0]
		g.Expect(c.Image).To(Equal(image), "the operator's image is put back")
		mode, _ := envValue(c, messaging.EnvMode)
		g.Expect(mode).To(Equal("Backtest"), "the operator's environment is put back")
		g.Expect(d.Spec.Template.Annotations).To(HaveKeyWithValue("kubectl.kubernetes.io/restartedAt", "2026-11-26T10:00:00Z"))
		g.Expect(d.Labels).To(HaveKeyWithValue("policy.example.com/owner", "desk-a"))
	}, timeout, interval).Should(Succeed())
	// And they stay through more reconciles.
	updateStrategy(g, ns, "owned", func(s *stratv1.Strategy) { s.Spec.EventLogger.LogLevel = "debug" })
	g.Eventually(func(g Gomega) {
		d := &appsv1.Deployment{}
		g.Expect(k8sClient.Get(ctx, key, d)).To(Succeed())
		level, _ := envValue(d.Spec.Template.Spec.Containers[0], messaging.EnvLogLevel)
		g.Expect(level).To(Equal("debug"))
		g.Expect(d.Spec.Template.Annotations).To(HaveKey("kubectl.kubernetes.io/restartedAt"))
		g.Expect(d.Labels).To(HaveKeyWithValue("policy.example.com/owner", "desk-a"))
	}, timeout, interval).Should(Succeed())
}
