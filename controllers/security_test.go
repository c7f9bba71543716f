package controllers

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/redis/go-redis/v9"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/children"
	"github.com/stratops/stratops/internal/redisprobe"
	"github.com/stratops/stratops/internal/redisserver"
)

// TestCache_SecretMetadataHoldsNoLastAppliedCopy: a Secret made with
// `kubectl apply` carries its whole data in an annotation; the operator's
// metadata-only cache of Secrets must not keep it.
func TestCache_SecretMetadataHoldsNoLastAppliedCopy(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "applied", Labels: map[string]string{stratv1.CredentialsLabel: "true"}, Annotations: map[string]string{
			// Not the suite's password: at the tests' log level (-10), REST
			// request and response bodies are logged, this one included.
			lastAppliedAnnotation: `{"apiVersion":"v1","kind":"Secret","stringData":{"password":"applied-secret-value"}}`,
			"team":                "desk-a",
		}},
		Data: map[string][]byte{"password": []byte("applied-secret-value")},
	}
	g.Expect(k8sClient.Create(ctx, sec)).To(Succeed())
	g.Expect(k8sClient.Create(ctx, liveWithPassword(ns, "cached", "applied"))).To(Succeed())
	g.Eventually(func(g Gomega) {
		m := &metav1.PartialObjectMetadata{}
		m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
		g.Expect(managerCache.Get(ctx, client.ObjectKey{Namespace: ns, Name: "applied"}, m)).To(Succeed())
		g.Expect(m.Annotations).To(HaveKeyWithValue("team", "desk-a"), "the Secret is in the cache")
		g.Expect(m.Annotations).NotTo(HaveKey(lastAppliedAnnotation))
	}, timeout, interval).Should(Succeed())
}

// TestCache_HoldsOfAChildOnlyWhatTheReconcilerReads: the API server keeps
// every manager's fields of a child; the manager's cache keeps what the
// reconciler reads:
//   - of the event logger's Deployment, its Service, ServiceAccount and
//     NetworkPolicy, no managed fields but the digest of what the
//     operator's apply owns, and of the Deployment's pod template only
//     the catalogs it mounts and its variables' names;
//   - of the engine's Deployment, whose template a held update keeps,
//     the whole object and the operator's own apply of its managed fields;
//   - of a catalog ConfigMap, no data; of a Strategy, no managed fields.
func TestCache_HoldsOfAChildOnlyWhatTheReconcilerReads(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	addr := startRedis(t).Addr
	runningLive(g, ns, "trimmed", addr, func(s *stratv1.Strategy) {
		s.Spec.Engine = liveOn(ns, "trimmed", addr, stratv1.RedisLossHalt).Spec.Engine
	})
	key := client.ObjectKey{Namespace: ns, Name: "trimmed-eventlogger"}
	patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"team":"desk-a"}}}`))
	g.Expect(k8sClient.Patch(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: key.Name}}, patch,
		client.FieldOwner("a-user"))).To(Succeed())
	stored := &appsv1.Deployment{}
	g.Expect(k8sClient.Get(ctx, key, stored)).To(Succeed())
	managers := func(fields []metav1.ManagedFieldsEntry) []string {
		var out []string
		for _, f := range fields {
			out = append(out, f.Manager+"/"+string(f.Operation)+"/"+f.Subresource)
		}
		return out
	}
	g.Expect(managers(stored.ManagedFields)).To(ContainElements("stratops/Apply/", "a-user/Update/"), "the API server keeps them all")
	g.Expect(len(stored.ManagedFields)).To(BeNumerically(">=", 3), "the status writer's too")
	owned, err := appsv1ac.ExtractDeployment(stored, fieldManager)
	g.Expect(err).NotTo(HaveOccurred())
	sum, err := digest(owned)
	g.Expect(err).NotTo(HaveOccurred())
	catalog := catalogOf(g, ns, key.Name)

	g.Eventually(func(g Gomega) {
		cached := &appsv1.Deployment{}
		g.Expect(managerCache.Get(ctx, key, cached)).To(Succeed())
		g.Expect(cached.Labels).To(HaveKeyWithValue("team", "desk-a"))
		g.Expect(cached.ManagedFields).To(BeEmpty())
		g.Expect(cached.Annotations).To(HaveKeyWithValue(ownedSumAnnotation, keyedSum(sum)))
		g.Expect(cached.Status.AvailableReplicas).To(Equal(stored.Status.AvailableReplicas))
		g.Expect(children.CatalogsIn(cached.Spec.Template.Spec)).To(Equal([]string{catalog}))
		g.Expect(busOf(cached)).To(Equal(busOf(stored)))
		c := cached.Spec.Template.Spec.Containers[0]
		g.Expect(c.Image).To(BeEmpty(), "the pod template's bulk is not cached")
		g.Expect(c.Env).NotTo(BeEmpty())
		for _, e := range c.Env {
			g.Expect(e.Value).To(BeEmpty(), "of its variables, only their names")
		}
	}, timeout, interval).Should(Succeed())

	s := &stratv1.Strategy{}
	g.Expect(managerCache.Get(ctx, client.ObjectKey{Namespace: ns, Name: "trimmed"}, s)).To(Succeed())
	for _, o := range []client.Object{&corev1.Service{}, &corev1.ServiceAccount{}, &networkingv1.NetworkPolicy{}} {
		g.Expect(managerCache.Get(ctx, key, o)).To(Succeed())
		g.Expect(o.GetManagedFields()).To(BeEmpty(), "%T", o)
		g.Expect(o.GetAnnotations()).To(HaveKey(ownedSumAnnotation), "%T", o)
		g.Expect(o.GetAnnotations()).To(HaveLen(1), "%T: only the digest", o)
		g.Expect(o.GetLabels()).To(BeEmpty(), "%T", o)
		g.Expect(o.GetOwnerReferences()).To(HaveLen(1), "%T", o)
		g.Expect(metav1.IsControlledBy(o, s)).To(BeTrue(), "%T", o)
	}
	svc := &corev1.Service{}
	g.Expect(managerCache.Get(ctx, key, svc)).To(Succeed())
	g.Expect(svc.Spec.Ports).To(BeEmpty(), "no spec")

	engine := &appsv1.Deployment{}
	g.Expect(managerCache.Get(ctx, client.ObjectKey{Namespace: ns, Name: "trimmed-engine"}, engine)).To(Succeed())
	g.Expect(managers(engine.ManagedFields)).To(Equal([]string{"stratops/Apply/"}))
	g.Expect(engine.Annotations).NotTo(HaveKey(ownedSumAnnotation))
	g.Expect(engine.Spec.Template.Spec.Containers[0].Image).NotTo(BeEmpty())

	cm := &corev1.ConfigMap{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: catalog}, cm)).To(Succeed())
	g.Expect(cm.Data).NotTo(BeEmpty())
	g.Expect(managerCache.Get(ctx, client.ObjectKey{Namespace: ns, Name: catalog}, cm)).To(Succeed())
	g.Expect(cm.Data).To(BeNil(), "a catalog's data is not cached")

	g.Expect(s.ManagedFields).To(BeEmpty())
}

// connectionsTo is how many connections a redis-server has accepted.
func connectionsTo(g Gomega, addr string) int64 {
	rc := redis.NewClient(&redis.Options{Addr: addr, Password: testPassword})
	defer rc.Close()
	for _, l := range strings.Split(rc.Info(context.Background(), "stats").Val(), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "total_connections_received:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			g.Expect(err).NotTo(HaveOccurred())
			return n
		}
	}
	g.Expect("total_connections_received").To(BeEmpty(), "INFO stats lacks it")
	return 0
}

// TestConsent_ASecretWithoutTheLabelIsNotReadUntilItsOwnerConsents: a
// Strategy may not make the operator read any Secret of its namespace. A
// new one that references an unlabelled Secret is Stalled before anything
// connects to Redis, and recovers when the label is added.
func TestConsent_ASecretWithoutTheLabelIsNotReadUntilItsOwnerConsents(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	srv, err := redisserver.Start(redisserver.Options{Args: []string{"--requirepass", testPassword}})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(srv.Close)
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db-creds"}, Data: map[string][]byte{"password": []byte(testPassword)}}
	g.Expect(k8sClient.Create(ctx, sec)).To(Succeed())
	before := connectionsTo(g, srv.Addr)
	s := liveWithPassword(ns, "consent", "db-creds")
	s.Spec.Redis.Address, s.Spec.Redis.Username = srv.Addr, ""
	g.Expect(k8sClient.Create(ctx, s)).To(Succeed())

	g.Eventually(func(g Gomega) {
		s := getStrategy(g, ns, "consent")
		st := condition(s, stratv1.ConditionStalled)
		g.Expect(st).NotTo(BeNil())
		g.Expect(st.Reason).To(Equal(stratv1.ReasonSecretNotPermitted))
		g.Expect(st.Message).To(ContainSubstring(`Secret "db-creds" (referenced by spec.redis.passwordSecretRef) lacks the label stratops.dev/redis-credentials: "true"`))
		g.Expect(hasEvent(g, ns, "consent", corev1.EventTypeWarning, stratv1.ReasonSecretNotPermitted)).To(BeTrue())
	}, timeout, interval).Should(Succeed())
	time.Sleep(2 * time.Second) // several reconciles' worth
	g.Expect(connectionsTo(g, srv.Addr)-before).To(Equal(int64(1)), "only this test's own INFO reached Redis: the operator sent it nothing")
	err = k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "consent-eventlogger"}, &appsv1.Deployment{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "nothing rolled out")

	// The owner consents: the Strategy goes on by itself.
	sec.Labels = map[string]string{stratv1.CredentialsLabel: "true"}
	g.Expect(k8sClient.Update(ctx, sec)).To(Succeed())
	g.Eventually(func(g Gomega) {
		s := getStrategy(g, ns, "consent")
		g.Expect(condition(s, stratv1.ConditionStalled)).To(BeNil())
		g.Expect(condition(s, stratv1.ConditionRedisReady).Status).To(Equal(metav1.ConditionTrue))
	}, timeout, interval).Should(Succeed())
}

// TestConsent_IsCheckedEveryTime: a Backtest without Redis that already
// has its logger, patched to Live with a password from an unlabelled
// Secret and an address of the author's, is Stalled and sends nothing to
// that address, as the same spec created fresh would be. A running
// Strategy whose Secret loses the label stalls too: consent withdrawn is
// consent refused.
func TestConsent_IsCheckedEveryTime(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	srv, err := redisserver.Start(redisserver.Options{Args: []string{"--requirepass", testPassword}})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(srv.Close)
	victim := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "victim"}, Data: map[string][]byte{"password": []byte(testPassword)}}
	g.Expect(k8sClient.Create(ctx, victim)).To(Succeed())
	createWithLogger(g, backtest(ns, "switch"))
	before := connectionsTo(g, srv.Addr)

	updateStrategy(g, ns, "switch", func(s *stratv1.Strategy) {
		s.Spec.Mode = stratv1.ModeLive
		s.Spec.Redis = &stratv1.RedisSpec{Address: srv.Addr, KeyPrefix: "switch:",
			PasswordSecretRef: &stratv1.SecretKeySelector{Name: "victim", Key: "password"}}
	})
	g.Eventually(func(g Gomega) {
		st := condition(getStrategy(g, ns, "switch"), stratv1.ConditionStalled)
		g.Expect(st).NotTo(BeNil())
		g.Expect(st.Reason).To(Equal(stratv1.ReasonSecretNotPermitted))
	}, timeout, interval).Should(Succeed())
	time.Sleep(2 * time.Second) // several reconciles' worth
	g.Expect(connectionsTo(g, srv.Addr)-before).To(Equal(int64(1)), "only this test's own INFO reached that Redis: the operator sent it nothing")
	d := &appsv1.Deployment{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "switch-eventlogger"}, d)).To(Succeed())
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			g.Expect(e.ValueFrom.SecretKeyRef.Name).NotTo(Equal("victim"), "the logger was given the unlabelled Secret")
		}
	}

	// The owner consents: it runs. Then withdraws: it stalls again.
	victim.Labels = map[string]string{stratv1.CredentialsLabel: "true"}
	g.Expect(k8sClient.Update(ctx, victim)).To(Succeed())
	g.Eventually(func(g Gomega) {
		s := getStrategy(g, ns, "switch")
		g.Expect(condition(s, stratv1.ConditionStalled)).To(BeNil())
		g.Expect(condition(s, stratv1.ConditionRedisReady).Status).To(Equal(metav1.ConditionTrue))
	}, timeout, interval).Should(Succeed())
	g.Expect(hasEvent(g, ns, "switch", corev1.EventTypeWarning, stratv1.EventPasswordWithoutTLS)).To(BeTrue(),
		"a password without TLS is warned about, not refused")
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "victim"}, victim)).To(Succeed())
	victim.Labels = nil
	g.Expect(k8sClient.Update(ctx, victim)).To(Succeed())
	g.Eventually(func(g Gomega) {
		st := condition(getStrategy(g, ns, "switch"), stratv1.ConditionStalled)
		g.Expect(st).NotTo(BeNil())
		g.Expect(st.Reason).To(Equal(stratv1.ReasonSecretNotPermitted))
	}, timeout, interval).Should(Succeed())
}

// TestAllowList_AStrategyPointedElsewhereStallsBeforeAnyConnection: with
// --allowed-redis-addresses set, a Strategy whose Redis is outside it is
// Stalled, AddressNotAllowed, naming the field and the list, and its Redis
// sees no connection from the operator; once the list holds the address,
// the next change of the Strategy brings it up.
func TestAllowList_AStrategyPointedElsewhereStallsBeforeAnyConnection(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	srv := startRedis(t)
	elsewhere, err := redisprobe.ParseAddressPolicy([]string{"*.redis.example.com", "10.0.0.0/8"})
	g.Expect(err).NotTo(HaveOccurred())
	reconciler.allowedAddresses.Store(elsewhere)
	t.Cleanup(func() { reconciler.allowedAddresses.Store(nil) })

	before := connectionsTo(g, srv.Addr)
	s := liveOn(ns, "fenced", srv.Addr, stratv1.RedisLossHalt)
	g.Expect(k8sClient.Create(ctx, s)).To(Succeed())
	g.Eventually(func(g Gomega) {
		s := getStrategy(g, ns, "fenced")
		g.Expect(kstatusOf(g, s)).To(Equal(kstatus.FailedStatus))
		c := condition(s, stratv1.ConditionReady)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Reason).To(Equal(stratv1.ReasonAddressNotAllowed))
		g.Expect(c.Message).To(ContainSubstring("spec.redis.address"))
		g.Expect(c.Message).To(ContainSubstring(srv.Addr))
		g.Expect(c.Message).To(ContainSubstring("*.redis.example.com,10.0.0.0/8"))
		g.Expect(hasEvent(g, ns, "fenced", corev1.EventTypeWarning, stratv1.ReasonAddressNotAllowed)).To(BeTrue())
	}, timeout, interval).Should(Succeed())
	g.Consistently(func() int64 { return connectionsTo(g, srv.Addr) - before }, 2*time.Second, 500*time.Millisecond).
		Should(BeNumerically("<=", 5), "only this test's own INFO connections")
	g.Expect(notFound(ns, "fenced-eventlogger", &appsv1.Deployment{})).To(BeTrue())

	allowed, err := redisprobe.ParseAddressPolicy([]string{"127.0.0.0/8"})
	g.Expect(err).NotTo(HaveOccurred())
	reconciler.allowedAddresses.Store(allowed)
	g.Eventually(func() error {
		s := getStrategy(g, ns, "fenced")
		s.Spec.Redis.KeyPrefix = "fenced2:"
		return k8sClient.Update(ctx, s)
	}, timeout, interval).Should(Succeed())
	g.Eventually(func() error {
		return k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "fenced-eventlogger"}, &appsv1.Deployment{})
	}, timeout, interval).Should(Succeed(), "an allowed address passes the gate")
}

// TestProbe_AnHTTPListenerIsNotQuotedAnywhere: a Strategy pointed at a
// plain HTTP server is gated with probe connect NotRedis, and nothing the
// server sent is in the Strategy's status, its events or the manager's
// logs.
func TestProbe_AnHTTPListenerIsNotQuotedAnywhere(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("intranet-login-page"))
	}))
	t.Cleanup(web.Close)
	s := liveOn(ns, "web", strings.TrimPrefix(web.URL, "http://"), stratv1.RedisLossHalt)
	g.Expect(k8sClient.Create(ctx, s)).To(Succeed())
	g.Eventually(func(g Gomega) {
		p := probe(getStrategy(g, ns, "web"), "connect")
		g.Expect(p).NotTo(BeNil())
		g.Expect(p.Reason).To(Equal("NotRedis"))
	}, timeout, interval).Should(Succeed())
	status, err := json.Marshal(getStrategy(g, ns, "web").Status)
	g.Expect(err).NotTo(HaveOccurred())
	for _, leaked := range []string{"HTTP/", "intranet-login-page", "Bad Request"} {
		g.Expect(string(status)).NotTo(ContainSubstring(leaked), "status")
		for _, e := range eventsFor(g, ns, "web") {
			g.Expect(e.Note).NotTo(ContainSubstring(leaked), "event %s", e.Reason)
		}
	}
	// The logs hold every test's lines (client-go's among them): look for
	// what only this server sends.
	for _, leaked := range []string{"HTTP/1.1 400", "intranet-login-page"} {
		g.Expect(managerLogs.String()).NotTo(ContainSubstring(leaked), "the manager's logs")
	}
}
