package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/children"
	psapi "k8s.io/pod-security-admission/api"
)

// baselineTemplates are engine templates that Pod Security baseline
// judges, each allowed or not. The rules stratops adds beyond baseline
// (no added capability, no privilege escalation, the engine's own
// ServiceAccount) are left out: there the policy is stricter on purpose.
var baselineTemplates = []struct {
	name    string
	mutate  func(t *corev1.PodTemplateSpec)
	allowed bool
}{
	{"an ordinary template", func(*corev1.PodTemplateSpec) {}, true},
	{"seccomp RuntimeDefault", func(t *corev1.PodTemplateSpec) {
		t.Spec.SecurityContext = &corev1.PodSecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}}
	}, true},
	{"seccomp Unconfined on the pod", func(t *corev1.PodTemplateSpec) {
		t.Spec.SecurityContext = &corev1.PodSecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}}
	}, false},
	{"seccomp Unconfined on a container", func(t *corev1.PodTemplateSpec) {
		t.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}}
	}, false},
	{"SELinux type spc_t", func(t *corev1.PodTemplateSpec) {
		t.Spec.SecurityContext = &corev1.PodSecurityContext{SELinuxOptions: &corev1.SELinuxOptions{Type: "spc_t"}}
	}, false},
	{"SELinux type container_t", func(t *corev1.PodTemplateSpec) {
		t.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{SELinuxOptions: &corev1.SELinuxOptions{Type: "container_t"}}
	}, true},
	{"SELinux user", func(t *corev1.PodTemplateSpec) {
		t.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{SELinuxOptions: &corev1.SELinuxOptions{User: "system_u"}}
	}, false},
	{"procMount Unmasked", func(t *corev1.PodTemplateSpec) {
		t.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{ProcMount: ptr.To(corev1.UnmaskedProcMount)}
	}, false},
	{"procMount Unmasked in a user namespace", func(t *corev1.PodTemplateSpec) {
		t.Spec.HostUsers = ptr.To(false)
		t.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{ProcMount: ptr.To(corev1.UnmaskedProcMount)}
	}, true},
	{"an unsafe sysctl", func(t *corev1.PodTemplateSpec) {
		t.Spec.SecurityContext = &corev1.PodSecurityContext{Sysctls: []corev1.Sysctl{{Name: "kernel.msgmax", Value: "65536"}}}
	}, false},
	{"a safe sysctl", func(t *corev1.PodTemplateSpec) {
		t.Spec.SecurityContext = &corev1.PodSecurityContext{Sysctls: []corev1.Sysctl{{Name: "net.ipv4.tcp_syncookies", Value: "1"}}}
	}, true},
	{"AppArmor Unconfined on the pod", func(t *corev1.PodTemplateSpec) {
		t.Spec.SecurityContext = &corev1.PodSecurityContext{AppArmorProfile: &corev1.AppArmorProfile{Type: corev1.AppArmorProfileTypeUnconfined}}
	}, false},
	{"AppArmor Unconfined on a container", func(t *corev1.PodTemplateSpec) {
		t.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{AppArmorProfile: &corev1.AppArmorProfile{Type: corev1.AppArmorProfileTypeUnconfined}}
	}, false},
	{"AppArmor RuntimeDefault", func(t *corev1.PodTemplateSpec) {
		t.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{AppArmorProfile: &corev1.AppArmorProfile{Type: corev1.AppArmorProfileTypeRuntimeDefault}}
	}, true},
	{"AppArmor unconfined by annotation", func(t *corev1.PodTemplateSpec) {
		t.Annotations = map[string]string{"container.apparmor.security.beta.kubernetes.io/engine": "unconfined"}
	}, false},
	{"a host network", func(t *corev1.PodTemplateSpec) { t.Spec.HostNetwork = true }, false},
	{"a privileged container", func(t *corev1.PodTemplateSpec) {
		t.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: ptr.To(true)}
	}, false},
	{"a hostPath volume", func(t *corev1.PodTemplateSpec) {
		t.Spec.Volumes = []corev1.Volume{{Name: "h", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}}}
	}, false},
	{"a host port", func(t *corev1.PodTemplateSpec) {
		t.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80, HostPort: 80}}
	}, false},
	{"a probe naming a host", func(t *corev1.PodTemplateSpec) {
		t.Spec.Containers[0].LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Host: "10.0.0.1", Port: intstrFromInt(80)}}}
	}, false},
	{"a probe without a host", func(t *corev1.PodTemplateSpec) {
		t.Spec.Containers[0].LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstrFromInt(80)}}}
	}, true},
	{"a Windows host process", func(t *corev1.PodTemplateSpec) {
		t.Spec.SecurityContext = &corev1.PodSecurityContext{WindowsOptions: &corev1.WindowsSecurityContextOptions{HostProcess: ptr.To(true)}}
	}, false},
}

func baselineTemplate(mutate func(*corev1.PodTemplateSpec)) corev1.PodTemplateSpec {
	t := corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "engine", Image: "engine:test"}}}}
	mutate(&t)
	return t
}

// TestPodSecurity_ThePolicyAndTheOfficialChecksAgreeAtBaseline: for each
// template of the table, the shipped engine-template policy (on the real
// API server) and the official Pod Security checks at baseline (what the
// operator runs) give the same verdict, and the one the table expects.
func TestPodSecurity_ThePolicyAndTheOfficialChecksAgreeAtBaseline(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := bindShippedPolicy(t, g, "engine-template-policy.yaml")
	g.Eventually(func() error {
		err := k8sClient.Create(ctx, engineStrategy(ns, "probe", func(p *corev1.PodSpec) { p.HostNetwork = true }))
		if err == nil {
			_ = k8sClient.Delete(ctx, backtest(ns, "probe"))
		}
		return err
	}, timeout, interval).Should(HaveOccurred())
	baseline := psapi.LevelVersion{Level: psapi.LevelBaseline, Version: psapi.LatestVersion()}
	for i, tc := range baselineTemplates {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			tmpl := baselineTemplate(tc.mutate)
			problems, err := children.PodSecurityProblems(baseline, &tmpl)
			g.Expect(err).NotTo(HaveOccurred())
			s := backtest(ns, fmt.Sprintf("t%d", i))
			s.Spec.Engine = &stratv1.EngineSpec{Template: tmpl}
			err = k8sClient.Create(ctx, s)
			g.Expect(err == nil || apierrors.IsInvalid(err)).To(BeTrue(), "a refusal is a 422: %v", err)
			g.Expect(len(problems) == 0).To(Equal(tc.allowed), "the official checks: %v", problems)
			g.Expect(err == nil).To(Equal(tc.allowed), "the shipped policy: %v", err)
		})
	}
}

// TestPodSecurity_TheOperatorJudgesAtTheNamespacesLevel: with no policy
// installed, the operator stalls an engine whose pod the namespace's
// Pod Security level refuses (baseline when unlabelled), naming each
// failed check, and runs no engine; relabelling the namespace re-judges
// its Strategies.
func TestPodSecurity_TheOperatorJudgesAtTheNamespacesLevel(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	unconfined := baselineTemplate(func(t *corev1.PodTemplateSpec) {
		t.Spec.SecurityContext = &corev1.PodSecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}}
	})
	s := backtest(ns, "unconfined")
	s.Spec.Engine = &stratv1.EngineSpec{Template: unconfined}
	createWithLogger(g, s)
	g.Eventually(func(g Gomega) {
		st := condition(getStrategy(g, ns, "unconfined"), stratv1.ConditionStalled)
		g.Expect(st).NotTo(BeNil())
		g.Expect(st.Reason).To(Equal(stratv1.ReasonEngineTemplateNotPermitted))
		g.Expect(st.Message).To(ContainSubstring(`Pod Security "baseline"`))
		g.Expect(st.Message).To(ContainSubstring("seccompProfile"))
	}, timeout, interval).Should(Succeed())
	g.Expect(backtestJobs(g, ns, "unconfined")).To(BeEmpty())

	// Baseline admits an ordinary template; restricted does not (no
	// runAsNonRoot, no dropped capabilities): the namespace decides.
	nsObj := &corev1.Namespace{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Name: ns}, nsObj)).To(Succeed())
	nsObj.Labels[psapi.EnforceLevelLabel] = string(psapi.LevelRestricted)
	g.Expect(k8sClient.Update(ctx, nsObj)).To(Succeed())
	runningLive(g, ns, "plain", redisOpen.Addr, nil)
	updateStrategy(g, ns, "plain", func(s *stratv1.Strategy) { s.Spec.Engine = liveEngine() })
	g.Eventually(func(g Gomega) {
		st := condition(getStrategy(g, ns, "plain"), stratv1.ConditionStalled)
		g.Expect(st).NotTo(BeNil())
		g.Expect(st.Message).To(ContainSubstring(`Pod Security "restricted"`))
		g.Expect(st.Message).To(ContainSubstring("runAsNonRoot"))
	}, timeout, interval).Should(Succeed())
	g.Expect(notFound(ns, "plain-engine", &appsv1.Deployment{})).To(BeTrue())

	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Name: ns}, nsObj)).To(Succeed())
	nsObj.Labels[psapi.EnforceLevelLabel] = string(psapi.LevelPrivileged)
	g.Expect(k8sClient.Update(ctx, nsObj)).To(Succeed())
	g.Eventually(func() error {
		return k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "plain-engine"}, &appsv1.Deployment{})
	}, timeout, interval).Should(Succeed(), "relabelled, the namespace's Strategies are judged again")
	st := condition(getStrategy(g, ns, "unconfined"), stratv1.ConditionStalled)
	g.Expect(st).NotTo(BeNil(), "privileged is judged as baseline: never below")
	g.Expect(strings.Contains(st.Message, `Pod Security "baseline"`)).To(BeTrue(), st.Message)
}

func intstrFromInt(i int) intstr.IntOrString { return intstr.FromInt32(int32(i)) }
