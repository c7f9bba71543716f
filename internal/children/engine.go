package children

import (
	"encoding/json"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	batchv1ac "k8s.io/client-go/applyconfigurations/batch/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	policyv1ac "k8s.io/client-go/applyconfigurations/policy/v1"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/pkg/messaging"
)

// EnginePodTemplate is the user's template with the Strategy's wiring
// added to every container, exactly as the event logger gets it: the
// messaging contract's environment (the password through a secretKeyRef)
// and files (the catalog, the CA), the standard labels, and the
// revision's annotations (which roll the pods when the revision changes).
func EnginePodTemplate(s *stratv1.Strategy, env messaging.PodEnv, annotations map[string]string) (*corev1ac.PodTemplateSpecApplyConfiguration, error) {
	t, err := podTemplate(s.Spec.Engine.Template)
	if err != nil {
		return nil, fmt.Errorf("spec.engine.template: %w", err)
	}
	w := podWiring(env)
	t.WithLabels(ObjectLabels(s, ComponentEngine)).WithAnnotations(annotations)
	if t.Spec == nil {
		t.WithSpec(corev1ac.PodSpec())
	}
	for i := range t.Spec.Containers {
		c := &t.Spec.Containers[i]
		c.Env = append(append([]corev1ac.EnvVarApplyConfiguration(nil), deref(w.env)...), c.Env...)
		c.WithVolumeMounts(w.mounts...)
	}
	t.Spec.WithVolumes(w.volumes...)
	return t, nil
}

// EngineServiceAccount is the engine's own ServiceAccount: the engine
// borrows no one's identity, and no API token is mounted unless its
// template asks for one (automountServiceAccountToken: true). A team whose
// engine needs the API binds a Role to it.
func EngineServiceAccount(s *stratv1.Strategy) *corev1ac.ServiceAccountApplyConfiguration {
	return corev1ac.ServiceAccount(EngineName(s), s.Namespace).
		WithLabels(ObjectLabels(s, ComponentEngine)).WithOwnerReferences(owner(s)).
		WithAutomountServiceAccountToken(false)
}

// WithEngineIdentity runs the engine's pods as its own ServiceAccount.
func WithEngineIdentity(s *stratv1.Strategy, t *corev1ac.PodTemplateSpecApplyConfiguration) *corev1ac.PodTemplateSpecApplyConfiguration {
	t.Spec.WithServiceAccountName(EngineName(s))
	return t
}

// EngineDeployment runs a Live engine. Recreate: the old pod stops before
// the new one starts, so two engines never trade at once.
func EngineDeployment(s *stratv1.Strategy, template *corev1ac.PodTemplateSpecApplyConfiguration, replicas int32) *appsv1ac.DeploymentApplyConfiguration {
	return appsv1ac.Deployment(EngineName(s), s.Namespace).
		WithLabels(ObjectLabels(s, ComponentEngine)).WithOwnerReferences(owner(s)).
		WithSpec(appsv1ac.DeploymentSpec().
			WithReplicas(replicas).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(SelectorLabels(s, ComponentEngine))).
			WithStrategy(appsv1ac.DeploymentStrategy().WithType(appsv1.RecreateDeploymentStrategyType)).
			WithTemplate(template))
}

// EnginePodDisruptionBudget keeps a Live engine's pod from eviction: a
// node drain waits until someone stops the engine on purpose
// (spec.engine.stopped) or removes it, rather than moving a trading engine
// behind their back.
func EnginePodDisruptionBudget(s *stratv1.Strategy) *policyv1ac.PodDisruptionBudgetApplyConfiguration {
	return policyv1ac.PodDisruptionBudget(EngineName(s), s.Namespace).
		WithLabels(ObjectLabels(s, ComponentEngine)).WithOwnerReferences(owner(s)).
		WithSpec(policyv1ac.PodDisruptionBudgetSpec().
			WithMaxUnavailable(intstr.FromInt32(0)).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(SelectorLabels(s, ComponentEngine))))
}

// BacktestJobName names the backtest Job of a revision: at most 63
// characters, as a Job's name must be.
func BacktestJobName(s *stratv1.Strategy, revision string) string {
	return s.Name + "-bt-" + revision[:min(8, len(revision))]
}

// BacktestJob runs a backtest engine once, for one revision:
// restartPolicy Never unless the template says OnFailure, two retries.
func BacktestJob(s *stratv1.Strategy, name string, template *corev1ac.PodTemplateSpecApplyConfiguration) *batchv1ac.JobApplyConfiguration {
	if p := template.Spec.RestartPolicy; p == nil || *p == corev1.RestartPolicyAlways {
		template.Spec.WithRestartPolicy(corev1.RestartPolicyNever)
	}
	return batchv1ac.Job(name, s.Namespace).
		WithLabels(ObjectLabels(s, ComponentEngine)).WithOwnerReferences(owner(s)).
		WithSpec(batchv1ac.JobSpec().WithTemplate(template).WithBackoffLimit(2))
}

// podTemplate turns the user's typed template into an apply configuration
// holding exactly the fields the user set: zero values that encoding/json
// writes for Go's sake (a null creationTimestamp, an empty resources) are
// not claimed.
func podTemplate(t corev1.PodTemplateSpec) (*corev1ac.PodTemplateSpecApplyConfiguration, error) {
	b, err := json.Marshal(t)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	prune(m)
	if b, err = json.Marshal(m); err != nil {
		return nil, err
	}
	ac := &corev1ac.PodTemplateSpecApplyConfiguration{}
	if err := json.Unmarshal(b, ac); err != nil {
		return nil, err
	}
	return ac, nil
}

// valueStructs are the fields of a pod template that Go holds as values,
// not pointers, so that encoding/json writes them empty when unset. An
// empty object anywhere else was written by the user and may mean
// something (an emptyDir, a downwardAPI volume).
var valueStructs = map[string]bool{"metadata": true, "resources": true}

// prune drops nulls, and the empty objects encoding/json writes for unset
// value structs.
func prune(m map[string]any) {
	for k, v := range m {
		switch x := v.(type) {
		case nil:
			delete(m, k)
		case map[string]any:
			prune(x)
			if len(x) == 0 && valueStructs[k] {
				delete(m, k)
			}
		case []any:
			for _, e := range x {
				if em, ok := e.(map[string]any); ok {
					prune(em)
				}
			}
		}
	}
}

func deref[T any](ps []*T) []T {
	out := make([]T, len(ps))
	for i, p := range ps {
		out[i] = *p
	}
	return out
}

// EngineTemplateProblems lists what an engine template asks for that an
// ordinary workload of the namespace may not have, each naming its field:
// host namespaces, privileged or privilege-escalating containers, added
// capabilities, hostPath volumes, host ports, or a ServiceAccount other
// than the engine's own. Creating a Strategy must give its author nothing
// they could not have as a Deployment of their own; the shipped
// ValidatingAdmissionPolicy says the same at admission.
func EngineTemplateProblems(s *stratv1.Strategy) []string {
	if s.Spec.Engine == nil {
		return nil
	}
	const base = "spec.engine.template.spec"
	p := s.Spec.Engine.Template.Spec
	var out []string
	add := func(field, what string) { out = append(out, base+"."+field+": "+what) }
	if p.HostNetwork {
		add("hostNetwork", "host namespaces are not permitted")
	}
	if p.HostPID {
		add("hostPID", "host namespaces are not permitted")
	}
	if p.HostIPC {
		add("hostIPC", "host namespaces are not permitted")
	}
	if p.ServiceAccountName != "" && p.ServiceAccountName != EngineName(s) {
		add("serviceAccountName", fmt.Sprintf("the engine runs as its own ServiceAccount %q; %q is not permitted", EngineName(s), p.ServiceAccountName))
	}
	if p.DeprecatedServiceAccount != "" && p.DeprecatedServiceAccount != EngineName(s) {
		add("serviceAccount", "the engine runs as its own ServiceAccount")
	}
	for i, v := range p.Volumes {
		if v.HostPath != nil {
			add(fmt.Sprintf("volumes[%d].hostPath", i), "hostPath volumes are not permitted")
		}
	}
	check := func(kind string, i int, c corev1.Container) {
		f := fmt.Sprintf("%s[%d]", kind, i)
		if sc := c.SecurityContext; sc != nil {
			if sc.Privileged != nil && *sc.Privileged {
				add(f+".securityContext.privileged", "privileged containers are not permitted")
			}
			if sc.AllowPrivilegeEscalation != nil && *sc.AllowPrivilegeEscalation {
				add(f+".securityContext.allowPrivilegeEscalation", "privilege escalation is not permitted")
			}
			if sc.Capabilities != nil && len(sc.Capabilities.Add) > 0 {
				add(f+".securityContext.capabilities.add", "added capabilities are not permitted")
			}
		}
		for j, port := range c.Ports {
			if port.HostPort != 0 {
				add(fmt.Sprintf("%s.ports[%d].hostPort", f, j), "host ports are not permitted")
			}
		}
	}
	for i, c := range p.InitContainers {
		check("initContainers", i, c)
	}
	for i, c := range p.Containers {
		check("containers", i, c)
	}
	return out
}
