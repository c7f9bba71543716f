package children

import (
	"testing"

	psapi "k8s.io/pod-security-admission/api"
)

// BenchmarkPodSecurity_TheEnginesPod is what judging an engine's pod
// costs: the template made typed, then the official checks.
func BenchmarkPodSecurity_TheEnginesPod(b *testing.B) {
	s := live()
	tmpl, err := EnginePodTemplate(s, PodEnv(s, true, "c"), nil)
	if err != nil {
		b.Fatal(err)
	}
	lv := psapi.LevelVersion{Level: psapi.LevelRestricted, Version: psapi.LatestVersion()}
	b.ReportAllocs()
	for b.Loop() {
		pod, err := TypedPodTemplate(tmpl)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := PodSecurityProblems(lv, pod); err != nil {
			b.Fatal(err)
		}
	}
}
