package controllers

import (
	"context"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/redis/go-redis/v9"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/children"
)

func engineDeployment(g Gomega, ns, name string) *appsv1.Deployment {
	d := &appsv1.Deployment{}
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name + "-engine"}, d)).To(Succeed())
	return d
}

// TestRevision_OnlyASecretValueMakesANewRevision: a label or another key
// added to a referenced Secret changes nothing that runs; a new value of
// the referenced key is a new revision, which rolls the engine (Auto) and
// names the key.
func TestRevision_OnlyASecretValueMakesANewRevision(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	user := "rot-" + ns
	admin := redis.NewClient(&redis.Options{Addr: redisAuth.Addr, Password: testPassword})
	defer admin.Close()
	g.Expect(admin.Do(ctx, "ACL", "SETUSER", user, "on", ">first-pass", ">second-pass", "~*", "&*", "+@all").Err()).To(Succeed())
	t.Cleanup(func() { admin.Do(context.Background(), "ACL", "DELUSER", user) })
	createSecret(t, ns, "rot", "first-pass")
	runningLive(g, ns, "rot", redisAuth.Addr, func(s *stratv1.Strategy) {
		s.Spec.Engine = liveEngine()
		s.Spec.Redis.Username = user
		s.Spec.Redis.PasswordSecretRef = &stratv1.SecretKeySelector{Name: "rot", Key: "password"}
	})
	d0 := engineDeployment(g, ns, "rot")
	rev0 := d0.Spec.Template.Annotations[children.AnnotationRevision]
	g.Expect(rev0).NotTo(BeEmpty())
	g.Expect(d0.Spec.Template.Annotations[children.AnnotationRevisionParts]).NotTo(ContainSubstring("first-pass"))

	sec := &corev1.Secret{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "rot"}, sec)).To(Succeed())
	sec.Labels["team"] = "desk-a"
	sec.Data["unrelated"] = []byte("x")
	g.Expect(k8sClient.Update(ctx, sec)).To(Succeed())
	g.Consistently(func(g Gomega) {
		d := engineDeployment(g, ns, "rot")
		g.Expect(d.Generation).To(Equal(d0.Generation), "the engine is left as it is")
		g.Expect(d.Spec.Template.Annotations[children.AnnotationRevision]).To(Equal(rev0))
	}, 3*time.Second, 200*time.Millisecond).Should(Succeed())

	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "rot"}, sec)).To(Succeed())
	sec.Data["password"] = []byte("second-pass")
	g.Expect(k8sClient.Update(ctx, sec)).To(Succeed())
	g.Eventually(func(g Gomega) {
		d := engineDeployment(g, ns, "rot")
		rev1 := d.Spec.Template.Annotations[children.AnnotationRevision]
		g.Expect(rev1).NotTo(Equal(rev0))
		diff := children.Differences(children.ParseParts(d0.Spec.Template.Annotations[children.AnnotationRevisionParts]),
			children.ParseParts(d.Spec.Template.Annotations[children.AnnotationRevisionParts]))
		g.Expect(diff).To(Equal([]string{"Secret rot key password"}))
		g.Expect(getStrategy(g, ns, "rot").Status.Engine.UpdateRevision).To(Equal(rev1))
	}, timeout, interval).Should(Succeed())
}

// TestRevision_ManualHoldsANewRevisionUntilApproved: with updateStrategy
// Manual, a template change of a running Live engine is held (its
// Deployment's template untouched for the whole wait, its catalog kept),
// UpdatePending says what differs and how to approve it, the Strategy
// stays Running and Current; a stale approval is refused with a Warning,
// and the approval rolls exactly the approved revision.
func TestRevision_ManualHoldsANewRevisionUntilApproved(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	runningLive(g, ns, "man", redisOpen.Addr, func(s *stratv1.Strategy) {
		s.Spec.Engine = liveEngine()
		s.Spec.Engine.UpdateStrategy = stratv1.UpdateManual
	})
	d0 := engineDeployment(g, ns, "man")
	oldCatalog := catalogOf(g, ns, "man-engine")

	updateStrategy(g, ns, "man", func(s *stratv1.Strategy) {
		s.Spec.Engine.Template.Spec.Containers[0].Image = "engine:v2"
		s.Spec.Messaging = &stratv1.MessagingSpec{Channels: []stratv1.ChannelSpec{{Name: "position:updated"}}}
	})
	var want string
	g.Eventually(func(g Gomega) {
		s := getStrategy(g, ns, "man")
		c := condition(s, stratv1.ConditionUpdatePending)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
		want = s.Status.Engine.UpdateRevision
		g.Expect(want).NotTo(Equal(s.Status.Engine.Revision))
		g.Expect(c.Message).To(ContainSubstring("the engine template"))
		g.Expect(c.Message).To(ContainSubstring("the catalog"))
		g.Expect(c.Message).To(ContainSubstring("kubectl annotate strat/man stratops.dev/approve-revision=" + want + " --overwrite"))
		g.Expect(hasEvent(g, ns, "man", corev1.EventTypeNormal, "UpdateHeld")).To(BeTrue())
	}, timeout, interval).Should(Succeed())
	// The logger is never held: it rolled, to the new catalog.
	g.Eventually(func(g Gomega) { g.Expect(catalogOf(g, ns, "man-eventlogger")).NotTo(Equal(oldCatalog)) }, timeout, interval).Should(Succeed())
	markAvailable(g, ns, "man-eventlogger")
	g.Eventually(func(g Gomega) {
		s := getStrategy(g, ns, "man")
		g.Expect(s.Status.Phase).To(Equal(stratv1.PhaseRunning))
		g.Expect(kstatusOf(g, s)).To(Equal(kstatus.CurrentStatus), "a held update does not block GitOps")
	}, timeout, interval).Should(Succeed())
	g.Consistently(func(g Gomega) {
		d := engineDeployment(g, ns, "man")
		g.Expect(d.Spec.Template).To(Equal(d0.Spec.Template), "the held engine's template is untouched")
		g.Expect(condition(getStrategy(g, ns, "man"), stratv1.ConditionUpdatePending)).NotTo(BeNil())
		g.Expect(notFound(ns, oldCatalog, &corev1.ConfigMap{})).To(BeFalse(), "the held engine keeps its catalog")
	}, 3*time.Second, 250*time.Millisecond).Should(Succeed())
	g.Expect(catalogOf(g, ns, "man-eventlogger")).NotTo(Equal(oldCatalog))

	approve := func(rev string) {
		g.Eventually(func() error {
			s := getStrategy(g, ns, "man")
			if s.Annotations == nil {
				s.Annotations = map[string]string{}
			}
			s.Annotations[stratv1.AnnotationApproveRevision] = rev
			return k8sClient.Update(ctx, s)
		}, timeout, interval).Should(Succeed())
	}
	approve("0123456789")
	g.Eventually(func(g Gomega) {
		g.Expect(hasEvent(g, ns, "man", corev1.EventTypeWarning, "ApprovalStale")).To(BeTrue())
	}, timeout, interval).Should(Succeed())
	g.Expect(engineDeployment(g, ns, "man").Spec.Template).To(Equal(d0.Spec.Template), "a stale approval rolls nothing")

	approve(want)
	g.Eventually(func(g Gomega) {
		d := engineDeployment(g, ns, "man")
		g.Expect(d.Spec.Template.Spec.Containers[0].Image).To(Equal("engine:v2"))
		g.Expect(d.Spec.Template.Annotations[children.AnnotationRevision]).To(Equal(want))
		g.Expect(d.Generation).To(Equal(d0.Generation+1), "rolled once")
		s := getStrategy(g, ns, "man")
		g.Expect(condition(s, stratv1.ConditionUpdatePending)).To(BeNil())
		g.Expect(s.Status.Engine.Revision).To(Equal(want))
	}, timeout, interval).Should(Succeed())
	markAvailable(g, ns, "man-engine")
	g.Eventually(func() bool { return notFound(ns, oldCatalog, &corev1.ConfigMap{}) }, timeout, interval).
		Should(BeTrue(), "once no pod mounts the old catalog, it goes")
	var restarted int
	for _, e := range eventsFor(g, ns, "man") {
		if e.Reason == "EngineRestarted" && strings.Contains(e.Note, "replaced") {
			restarted++
		}
	}
	g.Expect(restarted).To(Equal(1))
}
