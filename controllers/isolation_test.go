package controllers

import (
	"context"
	"net"
	"strconv"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/children"
	"github.com/stratops/stratops/pkg/messaging"
)

// TestIsolation_TheLoggerTokenIsMadeOnceOwnedAndRenewedWhenDeleted: the
// logger's API token is a random value in an immutable Secret the
// Strategy owns, given to the logger and the engine by reference, never
// by value. Deleted, it is made anew, and both roll to the new one.
func TestIsolation_TheLoggerTokenIsMadeOnceOwnedAndRenewedWhenDeleted(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	runningLive(g, ns, "tok", redisOpen.Addr, func(s *stratv1.Strategy) {
		s.Spec.Engine = liveEngine()
	})
	key := client.ObjectKey{Namespace: ns, Name: "tok-eventlogger-token"}
	sec := &corev1.Secret{}
	g.Expect(k8sClient.Get(ctx, key, sec)).To(Succeed())
	s := getStrategy(g, ns, "tok")
	g.Expect(metav1.IsControlledBy(sec, s)).To(BeTrue())
	g.Expect(*sec.Immutable).To(BeTrue())
	token := sec.Data[children.EventLoggerTokenKey]
	g.Expect(token).To(HaveLen(64), "256 random bits, hex")

	hashes := func(g Gomega) (logger, engine string) {
		for name, h := range map[string]*string{"tok-eventlogger": &logger, "tok-engine": &engine} {
			d := &appsv1.Deployment{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, d)).To(Succeed())
			c := d.Spec.Template.Spec.Containers[0]
			var ref *corev1.SecretKeySelector
			for _, e := range c.Env {
				if e.Name == messaging.EnvEventLoggerToken {
					g.Expect(e.Value).To(BeEmpty(), "the token is never in a pod spec")
					ref = e.ValueFrom.SecretKeyRef
				}
			}
			g.Expect(ref).NotTo(BeNil(), "%s gets the token", name)
			g.Expect(ref.Name).To(Equal("tok-eventlogger-token"))
			*h = d.Spec.Template.Annotations[children.AnnotationRevision]
		}
		return logger, engine
	}
	l0, e0 := hashes(g)
	for _, e := range eventsFor(g, ns, "tok") {
		g.Expect(e.Note).NotTo(ContainSubstring(string(token)))
	}

	// Reconciles leave it alone: the same Secret, the same token.
	updateStrategy(g, ns, "tok", func(s *stratv1.Strategy) { s.Spec.EventLogger.LogLevel = "debug" })
	g.Eventually(func(g Gomega) {
		d := &appsv1.Deployment{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "tok-eventlogger"}, d)).To(Succeed())
		v, _ := envValue(d.Spec.Template.Spec.Containers[0], messaging.EnvLogLevel)
		g.Expect(v).To(Equal("debug"))
	}, timeout, interval).Should(Succeed())
	again := &corev1.Secret{}
	g.Expect(k8sClient.Get(ctx, key, again)).To(Succeed())
	g.Expect(again.UID).To(Equal(sec.UID))

	// Deleted: made anew, and the pods roll to it.
	g.Expect(k8sClient.Delete(ctx, sec)).To(Succeed())
	g.Eventually(func(g Gomega) {
		renewed := &corev1.Secret{}
		g.Expect(k8sClient.Get(ctx, key, renewed)).To(Succeed())
		g.Expect(renewed.UID).NotTo(Equal(sec.UID))
		g.Expect(renewed.Data[children.EventLoggerTokenKey]).NotTo(Equal(token))
		l1, e1 := hashes(g)
		g.Expect(l1).NotTo(Equal(l0))
		g.Expect(e1).NotTo(Equal(e0))
	}, timeout, interval).Should(Succeed())
}

// TestIsolation_TheEngineRunsAsItsOwnServiceAccountWithoutAToken: the
// engine's pods run as "<name>-engine", a ServiceAccount the Strategy owns
// with no token mounted; a template that asks for the token gets it.
func TestIsolation_TheEngineRunsAsItsOwnServiceAccountWithoutAToken(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	runningLive(g, ns, "ident", redisOpen.Addr, func(s *stratv1.Strategy) {
		s.Spec.Engine = liveEngine()
	})
	sa := &corev1.ServiceAccount{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "ident-engine"}, sa)).To(Succeed())
	g.Expect(metav1.IsControlledBy(sa, getStrategy(g, ns, "ident"))).To(BeTrue())
	g.Expect(*sa.AutomountServiceAccountToken).To(BeFalse())
	d := &appsv1.Deployment{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "ident-engine"}, d)).To(Succeed())
	g.Expect(d.Spec.Template.Spec.ServiceAccountName).To(Equal("ident-engine"))
	g.Expect(d.Spec.Template.Spec.AutomountServiceAccountToken).To(BeNil(), "the ServiceAccount says no token")

	updateStrategy(g, ns, "ident", func(s *stratv1.Strategy) {
		s.Spec.Engine.Template.Spec.AutomountServiceAccountToken = new(true)
	})
	g.Eventually(func(g Gomega) {
		d := &appsv1.Deployment{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "ident-engine"}, d)).To(Succeed())
		g.Expect(d.Spec.Template.Spec.AutomountServiceAccountToken).NotTo(BeNil())
		g.Expect(*d.Spec.Template.Spec.AutomountServiceAccountToken).To(BeTrue(), "a template that asks gets the token")
	}, timeout, interval).Should(Succeed())

	// A ServiceAccount of the engine's name that the Strategy does not own
	// (a CI account, say) is never borrowed: the Strategy stalls, and no
	// engine runs as it.
	g.Expect(k8sClient.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ci-engine"}})).To(Succeed())
	s := liveOn(ns, "ci", redisOpen.Addr, stratv1.RedisLossHalt)
	s.Spec.Redis.KeyPrefix = ns + "-ci:"
	createWithLogger(g, s)
	g.Eventually(func(g Gomega) {
		st := condition(getStrategy(g, ns, "ci"), stratv1.ConditionStalled)
		g.Expect(st).NotTo(BeNil())
		g.Expect(st.Reason).To(Equal(stratv1.ReasonServiceAccountNotOwned))
		g.Expect(st.Message).To(ContainSubstring(`ServiceAccount "ci-engine"`))
	}, timeout, interval).Should(Succeed())
	g.Consistently(func() bool { return notFound(ns, "ci-engine", &appsv1.Deployment{}) }, "2s", interval).Should(BeTrue(),
		"no engine runs as a ServiceAccount the Strategy does not own")
}

// TestIsolation_TheLoggerNetworkPolicy: the logger's API port admits only
// the Strategy's engine pods, its health and metrics port the nodes and
// metrics namespaces the manager was told, its egress Redis and DNS; an
// edit is taken back.
func TestIsolation_TheLoggerNetworkPolicy(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	prev := reconciler.networkPolicy.Load()
	reconciler.networkPolicy.Store(&children.NetworkPolicyOptions{MetricsCIDRs: []string{"10.0.0.0/24"},
		MetricsNamespaceLabels: map[string]string{"stratops.dev/metrics": "true"}})
	t.Cleanup(func() { reconciler.networkPolicy.Store(prev) })
	runningLive(g, ns, "np", redisOpen.Addr, nil)

	key := types.NamespacedName{Namespace: ns, Name: "np-eventlogger"}
	np := &networkingv1.NetworkPolicy{}
	g.Expect(k8sClient.Get(ctx, key, np)).To(Succeed())
	g.Expect(metav1.IsControlledBy(np, getStrategy(g, ns, "np"))).To(BeTrue())
	g.Expect(np.Spec.PodSelector.MatchLabels).To(HaveKeyWithValue(children.LabelComponent, children.ComponentEventLogger))
	g.Expect(np.Spec.PolicyTypes).To(ConsistOf(networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress))
	g.Expect(np.Spec.Ingress).To(HaveLen(2))
	api, health := np.Spec.Ingress[0], np.Spec.Ingress[1]
	g.Expect(api.Ports[0].Port.IntVal).To(Equal(int32(messaging.EventLoggerPort)))
	g.Expect(api.From).To(HaveLen(1))
	g.Expect(api.From[0].PodSelector.MatchLabels).To(Equal(map[string]string{
		children.LabelName: children.ManagerName, children.LabelInstance: "np", children.LabelComponent: children.ComponentEngine,
	}), "only this Strategy's engine pods")
	g.Expect(api.From[0].NamespaceSelector).To(BeNil(), "of this namespace")
	g.Expect(health.Ports[0].Port.IntVal).To(Equal(int32(messaging.EventLoggerHealthPort)))
	g.Expect(health.From).To(HaveLen(2))
	g.Expect(health.From[0].IPBlock.CIDR).To(Equal("10.0.0.0/24"))
	g.Expect(health.From[1].NamespaceSelector.MatchLabels).To(Equal(map[string]string{"stratops.dev/metrics": "true"}))
	_, redisPort, _ := splitHostPort(redisOpen.Addr)
	g.Expect(np.Spec.Egress).To(HaveLen(2))
	g.Expect(np.Spec.Egress[0].Ports).To(HaveLen(2), "DNS, UDP and TCP")
	g.Expect(np.Spec.Egress[0].Ports[0].Port.IntVal).To(Equal(int32(53)))
	g.Expect(np.Spec.Egress[1].Ports[0].Port.IntVal).To(Equal(redisPort))
	g.Expect(np.Spec.Egress[1].To[0].IPBlock.CIDR).To(Equal("127.0.0.1/32"), "Redis, at its address")

	// Opened by hand: taken back.
	np.Spec.Ingress[0].From = nil
	g.Expect(k8sClient.Update(ctx, np)).To(Succeed())
	g.Eventually(func(g Gomega) {
		np := &networkingv1.NetworkPolicy{}
		g.Expect(k8sClient.Get(ctx, key, np)).To(Succeed())
		g.Expect(np.Spec.Ingress[0].From).To(HaveLen(1))
	}, timeout, interval).Should(Succeed())
}

func splitHostPort(addr string) (string, int32, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.Atoi(p)
	return host, int32(n), err
}
