package controllers

import (
	"context"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/ptr"

	"sigs.k8s.io/controller-runtime/pkg/client"

	stratv1 "github.com/stratops/stratops/api/v1"
)

// badEngineTemplates are engine templates that ask for more than an
// ordinary workload, each with the field its refusal must name.
var badEngineTemplates = []struct {
	name, field string
	mutate      func(p *corev1.PodSpec)
}{
	{"host network", "spec.engine.template.spec.hostNetwork", func(p *corev1.PodSpec) { p.HostNetwork = true }},
	{"host PID", "spec.engine.template.spec.hostPID", func(p *corev1.PodSpec) { p.HostPID = true }},
	{"host IPC", "spec.engine.template.spec.hostIPC", func(p *corev1.PodSpec) { p.HostIPC = true }},
	{"a borrowed ServiceAccount", "spec.engine.template.spec.serviceAccountName", func(p *corev1.PodSpec) { p.ServiceAccountName = "default" }},
	{"a hostPath volume", "spec.engine.template.spec.volumes[", func(p *corev1.PodSpec) {
		p.Volumes = []corev1.Volume{{Name: "root", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}}}
	}},
	{"a privileged container", "securityContext.privileged", func(p *corev1.PodSpec) {
		p.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: ptr.To(true)}
	}},
	{"privilege escalation in an init container", "securityContext.allowPrivilegeEscalation", func(p *corev1.PodSpec) {
		p.InitContainers = []corev1.Container{{Name: "init", Image: "init:1", SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(true)}}}
	}},
	{"an added capability", "securityContext.capabilities.add", func(p *corev1.PodSpec) {
		p.Containers[0].SecurityContext = &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN"}}}
	}},
	{"a host port", "hostPort", func(p *corev1.PodSpec) {
		p.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80, HostPort: 80}}
	}},
}

func engineStrategy(ns, name string, mutate func(p *corev1.PodSpec)) *stratv1.Strategy {
	s := backtest(ns, name)
	s.Spec.Engine = &stratv1.EngineSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Name: "engine", Image: "engine:test"}},
	}}}
	mutate(&s.Spec.Engine.Template.Spec)
	return s
}

// TestEngineTemplate_TheShippedPolicyRefusesEachFieldNamingIt applies the
// ValidatingAdmissionPolicy of config/policy, bound here to one namespace,
// and has the API server refuse each field.
func TestEngineTemplate_TheShippedPolicyRefusesEachFieldNamingIt(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := bindShippedPolicy(t, g, "engine-template-policy.yaml")
	// The policy takes a moment to load: wait for its first refusal.
	g.Eventually(func() error {
		err := k8sClient.Create(ctx, engineStrategy(ns, "probe", badEngineTemplates[0].mutate))
		if err == nil {
			_ = k8sClient.Delete(ctx, engineStrategy(ns, "probe", badEngineTemplates[0].mutate))
		}
		return err
	}, timeout, interval).Should(HaveOccurred())
	for i, tc := range badEngineTemplates {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			err := k8sClient.Create(ctx, engineStrategy(ns, "bad-"+strings.Repeat("x", i+1), tc.mutate))
			g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want 422, got %v", err)
			g.Expect(err.Error()).To(ContainSubstring(tc.field))
		})
	}
	g.Expect(k8sClient.Create(ctx, engineStrategy(ns, "fine", func(p *corev1.PodSpec) { p.ServiceAccountName = "fine-engine" }))).
		To(Succeed(), "an ordinary template, naming the engine's own ServiceAccount, is let in")
}

// TestEngineTemplate_TheOperatorRefusesThemItselfWithoutThePolicy: on a
// cluster without the policy, the operator stalls such a Strategy and
// creates no engine.
func TestEngineTemplate_TheOperatorRefusesThemItselfWithoutThePolicy(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	for i, tc := range badEngineTemplates {
		name := "own-" + strings.Repeat("x", i+1)
		g.Expect(k8sClient.Create(ctx, engineStrategy(ns, name, tc.mutate))).To(Succeed())
		g.Eventually(func(g Gomega) {
			st := condition(getStrategy(g, ns, name), stratv1.ConditionStalled)
			g.Expect(st).NotTo(BeNil(), tc.name)
			g.Expect(st.Reason).To(Equal(stratv1.ReasonEngineTemplateNotPermitted))
			g.Expect(st.Message).To(ContainSubstring(tc.field))
		}, timeout, interval).Should(Succeed())
		g.Expect(backtestJobs(g, ns, name)).To(BeEmpty(), "no engine for %s", tc.name)
	}
}

// TestDeletionProtection_TheShippedPolicyRefusesDeletingAProtectedStrategy
// applies config/policy's deletion protection, bound to this test's
// namespace: a Strategy annotated stratops.dev/deletion-protection: "true"
// is not deleted, one without it (or once it is removed) is.
func TestDeletionProtection_TheShippedPolicyRefusesDeletingAProtectedStrategy(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := bindShippedPolicy(t, g, "deletion-protection-policy.yaml")

	protected := func(name string) *stratv1.Strategy {
		s := backtest(ns, name)
		s.Annotations = map[string]string{stratv1.AnnotationDeletionProtection: "true"}
		return s
	}
	// The policy takes a moment to load: wait for its first refusal.
	g.Eventually(func() error {
		if err := k8sClient.Create(ctx, protected("probe")); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
		return k8sClient.Delete(ctx, backtest(ns, "probe"))
	}, timeout, interval).Should(HaveOccurred())

	g.Expect(k8sClient.Create(ctx, protected("kept"))).To(Succeed())
	g.Expect(k8sClient.Delete(ctx, backtest(ns, "kept"))).To(MatchError(ContainSubstring("remove the annotation to delete it")))
	s := getStrategy(g, ns, "kept")
	g.Expect(s.DeletionTimestamp).To(BeNil())

	other := backtest(ns, "plain")
	g.Expect(k8sClient.Create(ctx, other)).To(Succeed())
	g.Expect(k8sClient.Delete(ctx, other)).To(Succeed(), "an unprotected Strategy is deleted")

	// A merge patch, not an update: the operator writes the Strategy too
	// (its finalizer), and an update from a stale copy would conflict.
	before := s.DeepCopy()
	delete(s.Annotations, stratv1.AnnotationDeletionProtection)
	g.Expect(k8sClient.Patch(ctx, s, client.MergeFrom(before))).To(Succeed())
	g.Expect(k8sClient.Delete(ctx, s)).To(Succeed(), "with the annotation removed")
}
