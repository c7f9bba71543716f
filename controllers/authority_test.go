package controllers

import (
	"context"
	"os"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/children"
)

// bindShippedPolicy creates a policy of config/policy and its binding,
// the binding limited to a new namespace labelled for it, and returns
// that namespace. The policy loads a moment later: callers wait for its
// first refusal.
func bindShippedPolicy(t *testing.T, g Gomega, file string) string {
	t.Helper()
	ctx := context.Background()
	raw, err := os.ReadFile("../config/policy/" + file)
	g.Expect(err).NotTo(HaveOccurred())
	docs := strings.Split(string(raw), "\n---\n")
	policy, binding := &admissionv1.ValidatingAdmissionPolicy{}, &admissionv1.ValidatingAdmissionPolicyBinding{}
	g.Expect(yaml.UnmarshalStrict([]byte(docs[0]), policy)).To(Succeed())
	g.Expect(yaml.UnmarshalStrict([]byte(docs[1]), binding)).To(Succeed())
	g.Expect(binding.Spec.PolicyName).To(Equal(policy.Name), "the shipped binding binds the shipped policy")
	g.Expect(binding.Spec.ValidationActions).To(ConsistOf(admissionv1.Deny))
	if err := k8sClient.Create(ctx, policy); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), policy) })
	ns := newNamespace(t)
	nsObj := &corev1.Namespace{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Name: ns}, nsObj)).To(Succeed())
	label := "stratops.dev/test-" + policy.Name
	nsObj.Labels[label] = "on"
	g.Expect(k8sClient.Update(ctx, nsObj)).To(Succeed())
	binding.Name = "test-" + ns
	binding.Spec.MatchResources = &admissionv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{label: "on"}}}
	g.Expect(k8sClient.Create(ctx, binding)).To(Succeed())
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), binding) })
	return ns
}

// as is a client that acts as user (impersonation): the API server
// authorizes each request, and the policies judge it, as that user's.
func as(t *testing.T, user string) client.Client {
	t.Helper()
	cfg := rest.CopyConfig(restConfig)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	c, err := client.New(cfg, client.Options{Scheme: testScheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// grant gives user the rules in ns (a Role and its RoleBinding).
func grant(t *testing.T, g Gomega, ns, user string, rules ...rbacv1.PolicyRule) {
	t.Helper()
	ctx := context.Background()
	g.Expect(k8sClient.Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: user}, Rules: rules})).To(Succeed())
	g.Expect(k8sClient.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: user},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: user},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}}})).To(Succeed())
}

var (
	// strategyEditor is what stratops-strategy-editor gives.
	strategyEditor = rbacv1.PolicyRule{APIGroups: []string{"stratops.dev"}, Resources: []string{"strategies"},
		Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}}
	workloadCreator = rbacv1.PolicyRule{APIGroups: []string{"apps", "batch"}, Resources: []string{"deployments", "jobs"}, Verbs: []string{"create"}}
	approver        = rbacv1.PolicyRule{APIGroups: []string{"stratops.dev"}, Resources: []string{"strategies"}, Verbs: []string{"approve"}}
)

func secretReader(names ...string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: names, Verbs: []string{"get"}}
}

// withVictimInEnv gives a Strategy an engine whose container reads the
// Secret "victim".
func withVictimInEnv(s *stratv1.Strategy) *stratv1.Strategy {
	s.Spec.Engine = &stratv1.EngineSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{
		Name: "engine", Image: "engine:test",
		Env: []corev1.EnvVar{{Name: "STOLEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "victim"}, Key: "password"}}}},
	}}}}}
	return s
}

// TestAuthority_AStrategyGetsItsAuthorOnlyWhatTheirRightsAllow: with the
// shipped stratops-strategy-authority policy, a tenant bound only to the
// strategies resource is refused, at admission and naming the missing
// right, every Strategy that would have the operator create for them what
// they could not create themselves: an engine (a Job, a Deployment), a
// Secret they cannot read, a logger image of their choosing; the same
// Strategy without those is let in. A user who may create Jobs and read
// the Secret gets an engine that carries it, as a Job of their own would.
// No workload in the namespace carries the Secret but that one.
func TestAuthority_AStrategyGetsItsAuthorOnlyWhatTheirRightsAllow(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := bindShippedPolicy(t, g, "strategy-authority-policy.yaml")
	g.Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "victim"},
		Data: map[string][]byte{"password": []byte("hunter2")}})).To(Succeed())
	grant(t, g, ns, "tenant", strategyEditor)
	grant(t, g, ns, "builder", strategyEditor, workloadCreator, secretReader("victim"))
	tenant, builder := as(t, "tenant"), as(t, "builder")

	// The policy takes a moment to load: wait for its first refusal.
	g.Eventually(func() error {
		err := tenant.Create(ctx, withVictimInEnv(backtest(ns, "probe")))
		if err == nil {
			_ = k8sClient.Delete(ctx, backtest(ns, "probe"))
		}
		return err
	}, timeout, interval).Should(HaveOccurred())

	live := func(name string) *stratv1.Strategy {
		s := liveOn(ns, name, redisOpen.Addr, stratv1.RedisLossHalt)
		s.Spec.Engine = nil
		return s
	}
	withImage := backtest(ns, "image")
	withImage.Spec.EventLogger.Image = "attacker/logger:1"
	withPassword := live("password")
	withPassword.Spec.Redis.PasswordSecretRef = &stratv1.SecretKeySelector{Name: "victim", Key: "password"}
	withCA := live("ca")
	withCA.Spec.Redis.TLS = &stratv1.RedisTLSSpec{Enabled: true, CASecretRef: &stratv1.SecretKeySelector{Name: "victim", Key: "ca.crt"}}
	liveEngine := live("live-engine")
	liveEngine.Spec.Engine = withVictimInEnv(backtest(ns, "x")).Spec.Engine
	for _, tc := range []struct {
		name    string
		s       *stratv1.Strategy
		message string
	}{
		{"a backtest engine carrying a Secret", withVictimInEnv(backtest(ns, "bt-engine")), "spec.engine: tenant may not create jobs.batch in namespace " + ns},
		{"a live engine", liveEngine, "spec.engine: tenant may not create deployments.apps in namespace " + ns},
		{"a password the author cannot read", withPassword, "spec.redis.passwordSecretRef: tenant may not get Secret victim in namespace " + ns},
		{"a CA the author cannot read", withCA, "spec.redis.tls.caSecretRef: tenant may not get Secret victim"},
		{"a logger image of the author's", withImage, "spec.eventLogger.image: tenant may not create deployments.apps"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			err := tenant.Create(ctx, tc.s)
			g.Expect(apierrors.IsInvalid(err) || apierrors.IsForbidden(err)).To(BeTrue(), "want a refusal, got %v", err)
			g.Expect(err.Error()).To(ContainSubstring(tc.message))
		})
	}

	// What the tenant could create directly is let in; adding an engine
	// to it later is judged like a new one.
	g.Expect(tenant.Create(ctx, backtest(ns, "plain"))).To(Succeed())
	s := &stratv1.Strategy{}
	g.Expect(tenant.Get(ctx, client.ObjectKey{Namespace: ns, Name: "plain"}, s)).To(Succeed())
	withVictimInEnv(s)
	err := tenant.Update(ctx, s)
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(ContainSubstring("spec.engine: tenant may not create jobs.batch"))

	// Pointing a Strategy that names a Secret somewhere else sends the
	// Secret's value there, which is as good as reading it: judged again.
	// An edit that leaves where it goes alone is not.
	admins := live("admins")
	admins.Spec.Redis.PasswordSecretRef = &stratv1.SecretKeySelector{Name: "victim", Key: "password"}
	g.Expect(k8sClient.Create(ctx, admins)).To(Succeed())
	retarget := func(mutate func(*stratv1.Strategy)) error {
		// Retried on a conflict with the operator's status writes.
		return retry.RetryOnConflict(retry.DefaultRetry, func() error {
			s := &stratv1.Strategy{}
			if err := tenant.Get(ctx, client.ObjectKey{Namespace: ns, Name: "admins"}, s); err != nil {
				return err
			}
			mutate(s)
			return tenant.Update(ctx, s)
		})
	}
	err = retarget(func(s *stratv1.Strategy) { s.Spec.Redis.Address = "redis.attacker.example:6379" })
	g.Expect(err).To(MatchError(ContainSubstring("spec.redis.passwordSecretRef: tenant may not get Secret victim")), "the address, elsewhere")
	err = retarget(func(s *stratv1.Strategy) {
		s.Spec.Redis.TLS = &stratv1.RedisTLSSpec{Enabled: true, InsecureSkipVerify: true}
	})
	g.Expect(err).To(MatchError(ContainSubstring("spec.redis.passwordSecretRef: tenant may not get Secret victim")), "TLS, loosened")
	g.Expect(retarget(func(s *stratv1.Strategy) { s.Spec.Redis.KeyPrefix = "admins-2:" })).To(Succeed(), "the same Redis, another prefix")

	// The control: whoever may create the Job and read the Secret gets
	// the engine that carries it.
	g.Expect(builder.Create(ctx, withVictimInEnv(backtest(ns, "control")))).To(Succeed())
	g.Eventually(func() error {
		return k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "control-eventlogger"}, &appsv1.Deployment{})
	}, timeout, interval).Should(Succeed())
	markAvailable(g, ns, "control-eventlogger")
	g.Eventually(func(g Gomega) { g.Expect(backtestJobs(g, ns, "control")).To(HaveLen(1)) }, timeout, interval).Should(Succeed())

	// Every workload in the namespace: only the control's carries it.
	carriers := map[string]bool{}
	var jobs batchv1.JobList
	g.Expect(k8sClient.List(ctx, &jobs, client.InNamespace(ns))).To(Succeed())
	for _, j := range jobs.Items {
		if refersTo(j.Spec.Template.Spec, "victim") {
			carriers["Job/"+j.Name] = true
		}
	}
	var deps appsv1.DeploymentList
	g.Expect(k8sClient.List(ctx, &deps, client.InNamespace(ns))).To(Succeed())
	for _, d := range deps.Items {
		if refersTo(d.Spec.Template.Spec, "victim") {
			carriers["Deployment/"+d.Name] = true
		}
	}
	g.Expect(carriers).To(HaveLen(1))
	for k := range carriers {
		g.Expect(k).To(HavePrefix("Job/control-bt-"))
	}
}

// refersTo reports whether a pod spec reads the Secret name.
func refersTo(p corev1.PodSpec, name string) bool {
	for _, c := range append(append([]corev1.Container(nil), p.InitContainers...), p.Containers...) {
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Name == name {
				return true
			}
		}
		for _, e := range c.EnvFrom {
			if e.SecretRef != nil && e.SecretRef.Name == name {
				return true
			}
		}
	}
	for _, v := range p.Volumes {
		if v.Secret != nil && v.Secret.SecretName == name {
			return true
		}
	}
	return false
}

// TestAuthority_ApprovalNeedsTheApproveVerb: a user who may change a
// Strategy but lacks the verb approve cannot approve its held revision,
// nor lift updateStrategy Manual while it is held; one with the verb
// (stratops-strategy-approver) approves, and the engine rolls once.
func TestAuthority_ApprovalNeedsTheApproveVerb(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := bindShippedPolicy(t, g, "strategy-authority-policy.yaml")
	grant(t, g, ns, "editor", strategyEditor, workloadCreator)
	grant(t, g, ns, "approver", strategyEditor, workloadCreator, approver)
	editor, approving := as(t, "editor"), as(t, "approver")
	runningLive(g, ns, "held", redisOpen.Addr, func(s *stratv1.Strategy) {
		s.Spec.Engine = liveEngine()
		s.Spec.Engine.UpdateStrategy = stratv1.UpdateManual
	})
	d0 := engineDeployment(g, ns, "held")
	updateStrategy(g, ns, "held", func(s *stratv1.Strategy) { s.Spec.Engine.Template.Spec.Containers[0].Image = "engine:v2" })
	var want string
	g.Eventually(func(g Gomega) {
		s := getStrategy(g, ns, "held")
		g.Expect(condition(s, stratv1.ConditionUpdatePending)).NotTo(BeNil())
		want = s.Status.Engine.UpdateRevision
	}, timeout, interval).Should(Succeed())

	edit := func(c client.Client, mutate func(*stratv1.Strategy)) error {
		s := &stratv1.Strategy{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "held"}, s); err != nil {
			return err
		}
		mutate(s)
		return c.Update(ctx, s)
	}
	approve := func(s *stratv1.Strategy) {
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[stratv1.AnnotationApproveRevision] = want
	}
	// The policy takes a moment to load.
	g.Eventually(func() error { return edit(editor, approve) }, timeout, interval).
		Should(MatchError(ContainSubstring("metadata.annotations[stratops.dev/approve-revision]: editor may not approve strategies in namespace " + ns)))
	err := edit(editor, func(s *stratv1.Strategy) { s.Spec.Engine.UpdateStrategy = stratv1.UpdateAuto })
	g.Expect(err).To(MatchError(ContainSubstring("spec.engine: editor may not approve strategies")), "lifting Manual while an update is held")
	g.Consistently(func(g Gomega) {
		g.Expect(engineDeployment(g, ns, "held").Spec.Template).To(Equal(d0.Spec.Template))
	}, "2s", interval).Should(Succeed())

	g.Expect(edit(approving, approve)).To(Succeed())
	g.Eventually(func(g Gomega) {
		d := engineDeployment(g, ns, "held")
		g.Expect(d.Spec.Template.Annotations[children.AnnotationRevision]).To(Equal(want))
		g.Expect(d.Generation).To(Equal(d0.Generation+1), "rolled once")
	}, timeout, interval).Should(Succeed())
}
