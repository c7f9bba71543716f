package controllers

import (
	"context"
	"encoding/json"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/children"
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

// typed turns an apply configuration into the object an Update-era
// operator would have sent.
func typed[T any](g Gomega, ac any) *T {
	b, err := json.Marshal(ac)
	g.Expect(err).NotTo(HaveOccurred())
	out := new(T)
	g.Expect(json.Unmarshal(b, out)).To(Succeed())
	return out
}

// TestApply_AnUpgradeFromUpdateRestartsNoEngineAndPrunesWhatIsNoLongerSet:
// children written by a release that used Update (field manager "manager")
// are adopted: the first reconcile of this operator leaves the running
// engine's template as it is (no restart), moves the old manager's fields
// to server-side apply, and so prunes a field the operator no longer sets.
func TestApply_AnUpgradeFromUpdateRestartsNoEngineAndPrunesWhatIsNoLongerSet(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	// The Strategy exists, suspended, while "the old operator" made its children.
	s := liveOn(ns, "upgrade", redisOpen.Addr, stratv1.RedisLossHalt)
	s.Spec.Suspend = true
	g.Expect(k8sClient.Create(ctx, s)).To(Succeed())
	s = getStrategy(g, ns, "upgrade")

	catalog, err := children.Catalog(s)
	g.Expect(err).NotTo(HaveOccurred())
	catalogJSON, err := catalog.Marshal()
	g.Expect(err).NotTo(HaveOccurred())
	hash := children.ConfigHash(catalogJSON, nil)
	old := client.FieldOwner("manager")
	// The previous release's catalog: one mutable ConfigMap, <name>-catalog.
	oldCatalog := typed[corev1.ConfigMap](g, children.CatalogConfigMap(s, children.CatalogName(s), catalogJSON))
	oldCatalog.Immutable = nil
	g.Expect(k8sClient.Create(ctx, oldCatalog, old)).To(Succeed())
	g.Expect(k8sClient.Create(ctx, typed[corev1.ServiceAccount](g, children.EventLoggerServiceAccount(s)), old)).To(Succeed())
	g.Expect(k8sClient.Create(ctx, typed[corev1.Service](g, children.EventLoggerService(s)), old)).To(Succeed())
	logger := typed[appsv1.Deployment](g, children.EventLoggerDeployment(s, testImage, children.Revision{Name: "old", Catalog: children.CatalogName(s)}, true))
	// The old operator also set the logger's listen address, which this
	// one leaves to the logger's default.
	c := &logger.Spec.Template.Spec.Containers[0]
	c.Env = append(c.Env, corev1.EnvVar{Name: "STRATOPS_HTTP_ADDR", Value: ":8080"})
	g.Expect(k8sClient.Create(ctx, logger, old)).To(Succeed())
	markAvailable(g, ns, "upgrade-eventlogger")
	tmpl, err := children.EnginePodTemplate(s, children.PodEnv(s, true), map[string]string{children.AnnotationConfigHash: hash})
	g.Expect(err).NotTo(HaveOccurred())
	engine := typed[appsv1.Deployment](g, children.EngineDeployment(s, tmpl, 1))
	g.Expect(k8sClient.Create(ctx, engine, old)).To(Succeed())
	markAvailable(g, ns, "upgrade-engine")
	engineKey := client.ObjectKey{Namespace: ns, Name: "upgrade-engine"}
	before := &appsv1.Deployment{}
	g.Expect(k8sClient.Get(ctx, engineKey, before)).To(Succeed())

	// The new operator takes over.
	updateStrategy(g, ns, "upgrade", func(s *stratv1.Strategy) { s.Spec.Suspend = false })
	g.Eventually(func(g Gomega) {
		d := &appsv1.Deployment{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "upgrade-eventlogger"}, d)).To(Succeed())
		_, has := envValue(d.Spec.Template.Spec.Containers[0], "STRATOPS_HTTP_ADDR")
		g.Expect(has).To(BeFalse(), "a field the operator no longer sets is pruned")
		for _, m := range d.ManagedFields {
			g.Expect(m.Manager).NotTo(Equal("manager"), "the old manager's fields moved to server-side apply")
		}
	}, timeout, interval).Should(Succeed())
	// The logger rolls out its new template (the kubelet's part).
	markAvailable(g, ns, "upgrade-eventlogger")
	g.Eventually(func() stratv1.StrategyPhase { return getStrategy(g, ns, "upgrade").Status.Phase }, timeout, interval).
		Should(Equal(stratv1.PhaseRunning))

	after := &appsv1.Deployment{}
	g.Expect(k8sClient.Get(ctx, engineKey, after)).To(Succeed())
	g.Expect(after.Generation).To(Equal(before.Generation), "the engine's spec did not change: its pods were not restarted")
	g.Expect(after.Spec.Template).To(Equal(before.Spec.Template))
	applied := false
	for _, m := range after.ManagedFields {
		g.Expect(m.Manager).NotTo(Equal("manager"))
		applied = applied || (m.Manager == "stratops" && m.Operation == metav1.ManagedFieldsOperationApply)
	}
	g.Expect(applied).To(BeTrue(), "the engine's fields are the operator's, by server-side apply")
	for _, e := range eventsFor(g, ns, "upgrade") {
		g.Expect(e.Reason).NotTo(Equal("EngineRestarted"), "the upgrade must not restart the engine: %s", e.Note)
	}
	g.Expect(hasEvent(g, ns, "upgrade", corev1.EventTypeWarning, "EngineIdentityPending")).To(BeTrue(),
		"a Warning says the engine keeps its old identity until its next rollout")

	// The next change someone means rolls the engine, now as its own
	// ServiceAccount and with the logger's token.
	updateStrategy(g, ns, "upgrade", func(s *stratv1.Strategy) { s.Spec.Engine.Template.Spec.Containers[0].Image = "engine:v2" })
	g.Eventually(func(g Gomega) {
		d := &appsv1.Deployment{}
		g.Expect(k8sClient.Get(ctx, engineKey, d)).To(Succeed())
		g.Expect(d.Spec.Template.Spec.Containers[0].Image).To(Equal("engine:v2"))
		g.Expect(d.Spec.Template.Spec.ServiceAccountName).To(Equal("upgrade-engine"))
		_, hasToken := envValue(d.Spec.Template.Spec.Containers[0], messaging.EnvEventLoggerToken)
		g.Expect(hasToken).To(BeTrue())
	}, timeout, interval).Should(Succeed())
}
