package children

import (
	"encoding/json"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	psapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

// PodSecurityLevel is the Pod Security level and version an engine's pod
// is judged at: what the namespace's enforce labels say, never below
// baseline (an author may ask the operator for no more than the namespace
// would admit of a workload of theirs, and the operator runs nothing
// privileged). A label that does not parse is judged restricted, as Pod
// Security admission fails closed.
func PodSecurityLevel(namespaceLabels map[string]string) psapi.LevelVersion {
	lv := psapi.LevelVersion{Level: psapi.LevelBaseline, Version: psapi.LatestVersion()}
	if v, ok := namespaceLabels[psapi.EnforceLevelLabel]; ok {
		level, err := psapi.ParseLevel(v)
		switch {
		case err != nil:
			lv.Level = psapi.LevelRestricted
		case level == psapi.LevelRestricted:
			lv.Level = level
		}
	}
	if v, ok := namespaceLabels[psapi.EnforceVersionLabel]; ok {
		if version, err := psapi.ParseVersion(v); err == nil {
			lv.Version = version
		}
	}
	return lv
}

var (
	evaluatorOnce sync.Once
	evaluator     policy.Evaluator
	evaluatorErr  error
)

// PodSecurityProblems are the Pod Security checks the pod template fails
// at lv, each as Pod Security admission names it, with its detail: the
// official checks (k8s.io/pod-security-admission), the ones admission
// would run on the pod.
func PodSecurityProblems(lv psapi.LevelVersion, t *corev1.PodTemplateSpec) ([]string, error) {
	evaluatorOnce.Do(func() { evaluator, evaluatorErr = policy.NewEvaluator(policy.DefaultChecks(), nil) })
	if evaluatorErr != nil {
		return nil, fmt.Errorf("pod security checks: %w", evaluatorErr)
	}
	var out []string
	for _, r := range evaluator.EvaluatePod(lv, &t.ObjectMeta, &t.Spec) {
		if r.Allowed {
			continue
		}
		p := r.ForbiddenReason
		if r.ForbiddenDetail != "" {
			p += " (" + r.ForbiddenDetail + ")"
		}
		out = append(out, p)
	}
	return out, nil
}

// TypedPodTemplate is an apply configuration's pod template as the API
// server would hold it: what Pod Security judges.
func TypedPodTemplate(t *corev1ac.PodTemplateSpecApplyConfiguration) (*corev1.PodTemplateSpec, error) {
	b, err := json.Marshal(t)
	if err != nil {
		return nil, fmt.Errorf("encoding the pod template: %w", err)
	}
	out := &corev1.PodTemplateSpec{}
	if err := json.Unmarshal(b, out); err != nil {
		return nil, fmt.Errorf("decoding the pod template: %w", err)
	}
	return out, nil
}
