package controllers

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/children"
	"github.com/stratops/stratops/pkg/messaging"
)

func backtest(ns, name string) *stratv1.Strategy {
	return &stratv1.Strategy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       stratv1.StrategySpec{Mode: stratv1.ModeBacktest},
	}
}

func liveWithPassword(ns, name, secret string) *stratv1.Strategy {
	return &stratv1.Strategy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: stratv1.StrategySpec{
			Mode: stratv1.ModeLive,
			Redis: &stratv1.RedisSpec{
				Address:           redisAuth.Addr,
				KeyPrefix:         name + ":",
				Username:          "trader",
				PasswordSecretRef: &stratv1.SecretKeySelector{Name: secret, Key: "password"},
			},
		},
	}
}

func createSecret(t *testing.T, ns, name, password string) {
	t.Helper()
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{stratv1.CredentialsLabel: "true"}},
		Data:       map[string][]byte{"password": []byte(password)},
	}
	if err := k8sClient.Create(context.Background(), sec); err != nil {
		t.Fatalf("creating Secret: %v", err)
	}
}

func TestReconcile_ProvisionsEventLoggerChildrenWithOwnerRefsLabelsAndRestrictedPods(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	createSecret(t, ns, "redis-auth", testPassword)
	s := liveWithPassword(ns, "eth-basis", "redis-auth")
	s.Spec.EventLogger.Resources = corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: mustQuantity("128Mi")}}
	g.Expect(k8sClient.Create(ctx, s)).To(Succeed())
	s = getStrategy(g, ns, "eth-basis")

	key := client.ObjectKey{Namespace: ns, Name: "eth-basis-eventlogger"}
	dep := &appsv1.Deployment{}
	g.Eventually(func() error { return k8sClient.Get(ctx, key, dep) }, timeout, interval).Should(Succeed())
	cm := &corev1.ConfigMap{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: catalogOf(g, ns, "eth-basis-eventlogger")}, cm)).To(Succeed())
	g.Expect(cm.Name).To(HavePrefix("eth-basis-catalog-"), "named for its catalog")
	g.Expect(*cm.Immutable).To(BeTrue())
	sa := &corev1.ServiceAccount{}
	g.Eventually(func() error { return k8sClient.Get(ctx, key, sa) }, timeout, interval).Should(Succeed())
	svc := &corev1.Service{}
	g.Eventually(func() error { return k8sClient.Get(ctx, key, svc) }, timeout, interval).Should(Succeed())

	for _, o := range []client.Object{dep, cm, sa, svc} {
		refs := o.GetOwnerReferences()
		g.Expect(refs).To(HaveLen(1), "%T owner references", o)
		g.Expect(refs[0].UID).To(Equal(s.UID))
		g.Expect(*refs[0].Controller).To(BeTrue())
		g.Expect(o.GetLabels()).To(HaveKeyWithValue("app.kubernetes.io/name", "stratops"))
		g.Expect(o.GetLabels()).To(HaveKeyWithValue("app.kubernetes.io/instance", "eth-basis"))
		g.Expect(o.GetLabels()).To(HaveKeyWithValue("app.kubernetes.io/managed-by", "stratops"))
		g.Expect(o.GetLabels()).To(HaveKey("app.kubernetes.io/component"))
	}

	// The catalog: the standard's 6 channels and 9 keys, with the prefix.
	cat, err := messaging.ParseCatalog([]byte(cm.Data[messaging.CatalogFileName]))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cat.Mode).To(Equal(messaging.ModeLive))
	g.Expect(cat.KeyPrefix).To(Equal("eth-basis:"))
	g.Expect(cat.Channels).To(HaveLen(6))
	g.Expect(cat.Keys).To(HaveLen(9))
	snap, _ := cat.Key("position:snapshot")
	g.Expect(snap.TTL.Duration).To(Equal(time.Hour))

	pod := dep.Spec.Template.Spec
	g.Expect(pod.Containers).To(HaveLen(1))
	c := pod.Containers[0]
	g.Expect(c.Image).To(Equal(testImage))
	g.Expect(c.Resources.Limits.Memory().String()).To(Equal("128Mi"))
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	g.Expect(env[messaging.EnvRedisAddrs].Value).To(Equal(redisAuth.Addr))
	g.Expect(env[messaging.EnvRedisUsername].Value).To(Equal("trader"))
	g.Expect(env[messaging.EnvMode].Value).To(Equal("Live"))
	pw := env[messaging.EnvRedisPassword]
	g.Expect(pw.Value).To(BeEmpty(), "the password must never be copied into the pod spec")
	g.Expect(pw.ValueFrom.SecretKeyRef.Name).To(Equal("redis-auth"))
	g.Expect(pw.ValueFrom.SecretKeyRef.Key).To(Equal("password"))

	// Restricted Pod Security Standard.
	g.Expect(*pod.SecurityContext.RunAsNonRoot).To(BeTrue())
	g.Expect(pod.SecurityContext.SeccompProfile.Type).To(Equal(corev1.SeccompProfileTypeRuntimeDefault))
	g.Expect(*c.SecurityContext.ReadOnlyRootFilesystem).To(BeTrue())
	g.Expect(*c.SecurityContext.AllowPrivilegeEscalation).To(BeFalse())
	g.Expect(c.SecurityContext.Capabilities.Drop).To(ConsistOf(corev1.Capability("ALL")))
	g.Expect(*pod.AutomountServiceAccountToken).To(BeFalse())
	g.Expect(pod.ServiceAccountName).To(Equal("eth-basis-eventlogger"))

	// Probes on the logger's health port; the API on its own port.
	g.Expect(c.LivenessProbe.HTTPGet.Path).To(Equal("/healthz"))
	g.Expect(c.ReadinessProbe.HTTPGet.Path).To(Equal("/readyz"))
	g.Expect(c.LivenessProbe.HTTPGet.Port.StrVal).To(Equal("metrics"))
	g.Expect(c.ReadinessProbe.HTTPGet.Port.StrVal).To(Equal("metrics"))
	g.Expect(c.Ports[0].ContainerPort).To(Equal(int32(messaging.EventLoggerPort)))
	g.Expect(c.Ports[1].ContainerPort).To(Equal(int32(messaging.EventLoggerHealthPort)))
	g.Expect(svc.Spec.Ports[0].TargetPort.StrVal).To(Equal("http"))
	g.Expect(svc.Spec.Ports[1].TargetPort.StrVal).To(Equal("metrics"))
	for k, v := range svc.Spec.Selector {
		g.Expect(dep.Spec.Template.Labels).To(HaveKeyWithValue(k, v), "the Service selects the logger pods")
	}
	g.Expect(svc.Spec.Selector).To(Equal(dep.Spec.Selector.MatchLabels))

	// The catalog is mounted, the revision rolls pods on a change.
	g.Expect(c.VolumeMounts).To(ContainElement(HaveField("MountPath", "/etc/stratops")))
	g.Expect(dep.Spec.Template.Annotations).To(HaveKey(children.AnnotationRevision))
	g.Expect(dep.Spec.Template.Annotations).To(HaveKey(children.AnnotationRevisionParts))

	// Nothing the operator wrote holds the password.
	for _, o := range []any{dep, cm, sa, svc, getStrategy(g, ns, "eth-basis")} {
		b, _ := json.Marshal(o)
		g.Expect(string(b)).NotTo(ContainSubstring(testPassword))
	}
	for _, e := range eventsFor(g, ns, "eth-basis") {
		g.Expect(e.Note).NotTo(ContainSubstring(testPassword))
	}
}

func TestReconcile_ConfigChangeRollsThePodTemplate(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	g.Expect(k8sClient.Create(ctx, backtest(ns, "roll"))).To(Succeed())
	key := client.ObjectKey{Namespace: ns, Name: "roll-eventlogger"}
	dep := &appsv1.Deployment{}
	g.Eventually(func() error { return k8sClient.Get(ctx, key, dep) }, timeout, interval).Should(Succeed())
	before := dep.Spec.Template.Annotations[children.AnnotationRevision]
	oldCatalog := catalogOf(g, ns, "roll-eventlogger")

	updateStrategy(g, ns, "roll", func(s *stratv1.Strategy) {
		s.Spec.Messaging = &stratv1.MessagingSpec{Channels: []stratv1.ChannelSpec{{Name: "position:updated"}}}
	})
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, key, dep)).To(Succeed())
		g.Expect(dep.Spec.Template.Annotations[children.AnnotationRevision]).NotTo(Equal(before))
		g.Expect(children.Differences(children.ParseParts(""), children.ParseParts(dep.Spec.Template.Annotations[children.AnnotationRevisionParts]))).
			To(ContainElement("the catalog"))
	}, timeout, interval).Should(Succeed())
	newCatalog := catalogOf(g, ns, "roll-eventlogger")
	g.Expect(newCatalog).NotTo(Equal(oldCatalog), "a new catalog is a new ConfigMap, not an edit")
	g.Eventually(func() bool { return notFound(ns, oldCatalog, &corev1.ConfigMap{}) }, timeout, interval).
		Should(BeTrue(), "the old catalog goes once no pod mounts it")
	cm := &corev1.ConfigMap{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: newCatalog}, cm)).To(Succeed())
	cat, err := messaging.ParseCatalog([]byte(cm.Data[messaging.CatalogFileName]))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cat.Channels).To(HaveLen(1))
	g.Expect(cat.Channels[0].MinSubscribers).To(Equal(2), "the standard's subscriber plus the event logger")
	g.Expect(cat.Keys).To(HaveLen(9), "keys omitted from spec.messaging stay the standard's")
}

func TestReconcile_RestoresDeletedDeploymentAndEditedConfigMap(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	g.Expect(k8sClient.Create(ctx, backtest(ns, "drift"))).To(Succeed())

	depKey := client.ObjectKey{Namespace: ns, Name: "drift-eventlogger"}
	dep := &appsv1.Deployment{}
	g.Eventually(func() error { return k8sClient.Get(ctx, depKey, dep) }, timeout, interval).Should(Succeed())
	cmKey := client.ObjectKey{Namespace: ns, Name: catalogOf(g, ns, "drift-eventlogger")}
	cm := &corev1.ConfigMap{}
	g.Expect(k8sClient.Get(ctx, cmKey, cm)).To(Succeed())
	want := cm.Data[messaging.CatalogFileName]

	oldUID := dep.UID
	g.Expect(k8sClient.Delete(ctx, dep)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, depKey, dep)).To(Succeed())
		g.Expect(dep.UID).NotTo(Equal(oldUID))
	}, timeout, interval).Should(Succeed())

	// The catalog cannot be edited (immutable); deleted, it is made again.
	cm.Data[messaging.CatalogFileName] = `{"mode":"Live","channels":[],"keys":[]}`
	g.Expect(k8sClient.Update(ctx, cm)).NotTo(Succeed(), "the catalog ConfigMap is immutable")
	g.Expect(k8sClient.Delete(ctx, cm)).To(Succeed())
	g.Eventually(func(g Gomega) {
		cm = &corev1.ConfigMap{}
		g.Expect(k8sClient.Get(ctx, cmKey, cm)).To(Succeed())
		g.Expect(cm.Data[messaging.CatalogFileName]).To(Equal(want))
	}, timeout, interval).Should(Succeed())

	// A hand edit of the pod template is put back too.
	g.Expect(k8sClient.Get(ctx, depKey, dep)).To(Succeed())
	dep.Spec.Template.Spec.Containers[0].Image = "someone-else:latest"
	g.Expect(k8sClient.Update(ctx, dep)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, depKey, dep)).To(Succeed())
		g.Expect(dep.Spec.Template.Spec.Containers[0].Image).To(Equal(testImage))
	}, timeout, interval).Should(Succeed())
}

func TestReconcile_MissingSecretStallsAndRecoversWhenCreated(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	g.Expect(k8sClient.Create(ctx, liveWithPassword(ns, "stall", "redis-auth"))).To(Succeed())

	g.Eventually(func(g Gomega) {
		s := getStrategy(g, ns, "stall")
		st := condition(s, stratv1.ConditionStalled)
		g.Expect(st).NotTo(BeNil())
		g.Expect(st.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(st.Reason).To(Equal(stratv1.ReasonSecretNotFound))
		g.Expect(st.Message).To(ContainSubstring(`"redis-auth"`))
		g.Expect(st.Message).To(ContainSubstring("spec.redis.passwordSecretRef"))
		g.Expect(condition(s, stratv1.ConditionReady).Status).To(Equal(metav1.ConditionFalse))
		g.Expect(condition(s, stratv1.ConditionReconciling)).To(BeNil())
		g.Expect(s.Status.ObservedGeneration).To(Equal(s.Generation))
		g.Expect(kstatusOf(g, s)).To(Equal(kstatus.FailedStatus))
	}, timeout, interval).Should(Succeed())
	g.Eventually(func(g Gomega) {
		var warned bool
		for _, e := range eventsFor(g, ns, "stall") {
			if e.Type == corev1.EventTypeWarning && e.Reason == stratv1.ReasonSecretNotFound && strings.Contains(e.Note, "redis-auth") {
				warned = true
			}
		}
		g.Expect(warned).To(BeTrue(), "a Warning event names the missing Secret")
	}, timeout, interval).Should(Succeed())
	// Nothing rolled out while stalled.
	err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "stall-eventlogger"}, &appsv1.Deployment{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue())

	// A Secret without the key is still stalled, with its own reason.
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "redis-auth", Labels: map[string]string{stratv1.CredentialsLabel: "true"}},
		Data: map[string][]byte{"other": []byte("x")}}
	g.Expect(k8sClient.Create(ctx, sec)).To(Succeed())
	g.Eventually(func(g Gomega) {
		st := condition(getStrategy(g, ns, "stall"), stratv1.ConditionStalled)
		g.Expect(st).NotTo(BeNil())
		g.Expect(st.Reason).To(Equal(stratv1.ReasonSecretKeyNotFound))
		g.Expect(st.Message).To(ContainSubstring(`no key "password"`))
		g.Expect(hasEvent(g, ns, "stall", corev1.EventTypeWarning, stratv1.ReasonSecretKeyNotFound)).To(BeTrue(),
			"a new stall reason gets its own Warning event")
	}, timeout, interval).Should(Succeed())

	// Fixing the Secret recovers without touching the Strategy.
	sec.Data = map[string][]byte{"password": []byte(testPassword)}
	g.Expect(k8sClient.Update(ctx, sec)).To(Succeed())
	g.Eventually(func(g Gomega) {
		s := getStrategy(g, ns, "stall")
		g.Expect(condition(s, stratv1.ConditionStalled)).To(BeNil())
		g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "stall-eventlogger"}, &appsv1.Deployment{})).To(Succeed())
	}, timeout, interval).Should(Succeed())
}

func TestReconcile_KstatusInProgressUntilEventLoggerAvailableThenCurrent(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	g.Expect(k8sClient.Create(ctx, backtest(ns, "kst"))).To(Succeed())

	g.Eventually(func(g Gomega) {
		s := getStrategy(g, ns, "kst")
		g.Expect(s.Status.ObservedGeneration).To(Equal(s.Generation))
		ready := condition(s, stratv1.ConditionReady)
		g.Expect(ready).NotTo(BeNil(), "Ready is present from the first reconcile")
		g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(ready.Reason).To(Equal(stratv1.ReasonEventLoggerNotReady))
		g.Expect(condition(s, stratv1.ConditionReconciling).Status).To(Equal(metav1.ConditionTrue))
		g.Expect(condition(s, stratv1.ConditionStalled)).To(BeNil())
		g.Expect(s.Status.Phase).To(Equal(stratv1.PhasePending))
		g.Expect(kstatusOf(g, s)).To(Equal(kstatus.InProgressStatus))
	}, timeout, interval).Should(Succeed())

	markAvailable(g, ns, "kst-eventlogger")
	g.Eventually(func(g Gomega) {
		s := getStrategy(g, ns, "kst")
		g.Expect(condition(s, stratv1.ConditionReady).Status).To(Equal(metav1.ConditionTrue))
		g.Expect(condition(s, stratv1.ConditionEventLoggerReady).Status).To(Equal(metav1.ConditionTrue))
		g.Expect(condition(s, stratv1.ConditionReconciling)).To(BeNil())
		g.Expect(s.Status.Phase).To(Equal(stratv1.PhaseRunning))
		g.Expect(s.Status.EventLogger.Replicas).To(Equal(int32(1)))
		g.Expect(s.Status.EventLogger.ReadyReplicas).To(Equal(int32(1)))
		g.Expect(s.Status.EventLogger.Revision).NotTo(BeEmpty())
		g.Expect(s.Status.EventLogger.UpdateRevision).To(Equal(s.Status.EventLogger.Revision))
		g.Expect(kstatusOf(g, s)).To(Equal(kstatus.CurrentStatus))
	}, timeout, interval).Should(Succeed())
}

func TestReconcile_NoOpReconcileWritesNothing(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	createSecret(t, ns, "redis-auth", testPassword)
	s := liveWithPassword(ns, "noop", "redis-auth")
	// An engine whose template leaves fields to the API server's defaults
	// (probe thresholds, resources) and has an empty emptyDir: none of it
	// may make the operator apply again.
	s.Spec.Engine = &stratv1.EngineSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Name: "engine", Image: "engine:test",
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}},
			VolumeMounts:   []corev1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}}}},
		Volumes: []corev1.Volume{{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
	}}}
	g.Expect(k8sClient.Create(ctx, s)).To(Succeed())
	g.Eventually(func() error {
		return k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "noop-eventlogger"}, &appsv1.Deployment{})
	}, timeout, interval).Should(Succeed())
	markAvailable(g, ns, "noop-eventlogger")
	g.Eventually(func() error {
		return k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "noop-engine"}, &appsv1.Deployment{})
	}, timeout, interval).Should(Succeed())
	markAvailable(g, ns, "noop-engine")
	g.Eventually(func(g Gomega) {
		g.Expect(getStrategy(g, ns, "noop").Status.Phase).To(Equal(stratv1.PhaseRunning))
	}, timeout, interval).Should(Succeed())

	versions := func() map[string]string {
		out := map[string]string{}
		for i, o := range []client.Object{&stratv1.Strategy{}, &appsv1.Deployment{}, &appsv1.Deployment{}, &corev1.ConfigMap{}, &corev1.Service{}, &corev1.ServiceAccount{}} {
			name := "noop-eventlogger"
			switch o.(type) {
			case *stratv1.Strategy:
				name = "noop"
			case *corev1.ConfigMap:
				name = catalogOf(g, ns, "noop-eventlogger")
			}
			if i == 2 {
				name = "noop-engine"
			}
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, o)).To(Succeed())
			out[kindOf(testScheme, o)+"/"+name] = o.GetResourceVersion()
		}
		return out
	}
	// Let the cache catch up with the last writes, then reconcile by hand.
	var before map[string]string
	g.Eventually(func(g Gomega) {
		before = versions()
		_, err := reconciler.Reconcile(ctx, ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: "noop"}})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(versions()).To(Equal(before))
	}, timeout, interval).Should(Succeed())
	for range 3 {
		// Without the memo of children found in shape: each reconcile
		// compares what the operator owns with what it wants.
		reconciler.inShape.Range(func(k, _ any) bool { reconciler.inShape.Delete(k); return true })
		_, err := reconciler.Reconcile(ctx, ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: "noop"}})
		g.Expect(err).NotTo(HaveOccurred())
	}
	g.Expect(versions()).To(Equal(before), "a reconcile with nothing to do must write nothing")
	for _, e := range eventsFor(g, ns, "noop") {
		g.Expect(e.Reason).NotTo(Equal("Updated"), "no update is sent for children in shape: %s", e.Note)
	}
}

func TestReconcile_SuspendStopsReconcilingAndShowsSuspended(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	g.Expect(k8sClient.Create(ctx, backtest(ns, "susp"))).To(Succeed())
	key := client.ObjectKey{Namespace: ns, Name: "susp-eventlogger"}
	dep := &appsv1.Deployment{}
	g.Eventually(func() error { return k8sClient.Get(ctx, key, dep) }, timeout, interval).Should(Succeed())

	updateStrategy(g, ns, "susp", func(s *stratv1.Strategy) { s.Spec.Suspend = true })
	g.Eventually(func(g Gomega) {
		s := getStrategy(g, ns, "susp")
		g.Expect(s.Status.Phase).To(Equal(stratv1.PhaseSuspended))
		g.Expect(s.Status.ObservedGeneration).To(Equal(s.Generation))
		g.Expect(condition(s, stratv1.ConditionReady)).NotTo(BeNil())
	}, timeout, interval).Should(Succeed())

	g.Expect(k8sClient.Delete(ctx, dep)).To(Succeed())
	g.Consistently(func() bool {
		return apierrors.IsNotFound(k8sClient.Get(ctx, key, &appsv1.Deployment{}))
	}, 2*time.Second, interval).Should(BeTrue(), "a suspended Strategy is not reconciled")

	updateStrategy(g, ns, "susp", func(s *stratv1.Strategy) { s.Spec.Suspend = false })
	g.Eventually(func() error { return k8sClient.Get(ctx, key, &appsv1.Deployment{}) }, timeout, interval).Should(Succeed())
}

// catalogOf is the catalog ConfigMap a Deployment's pods mount.
func catalogOf(g Gomega, ns, deployment string) string {
	d := &appsv1.Deployment{}
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: deployment}, d)).To(Succeed())
	names := children.CatalogsIn(d.Spec.Template.Spec)
	g.Expect(names).To(HaveLen(1))
	return names[0]
}
