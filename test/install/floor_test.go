package install

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/discovery"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"
)

// floorMinor is the lowest Kubernetes minor stratops supports (the README
// and the chart's kubeVersion say so): the first with
// ValidatingAdmissionPolicy v1.
const floorMinor = "30"

// TestFloor_TheLowestSupportedKubernetesTakesTheInstall runs on the
// kube-apiserver of the lowest supported minor (KUBEBUILDER_ASSETS_FLOOR,
// built by `make envtest-floor`): the CRD applies client-side (its
// last-applied annotation within the limit), the release's stratops.yaml
// applies server-side with strict field validation, and its admission
// policies then work there: a valid Strategy is admitted, an engine on
// the host's network is refused with the policy's message.
func TestFloor_TheLowestSupportedKubernetesTakesTheInstall(t *testing.T) {
	assets := tool(t, "KUBEBUILDER_ASSETS_FLOOR")
	// envtest reads KUBEBUILDER_ASSETS before anything else.
	t.Setenv("KUBEBUILDER_ASSETS", assets)
	env := &envtest.Environment{}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting kube-apiserver from %s: %v", assets, err)
	}
	defer func() { _ = env.Stop() }()
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	v, err := dc.ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if v.Major != "1" || v.Minor != floorMinor {
		t.Fatalf("KUBEBUILDER_ASSETS_FLOOR runs Kubernetes %s.%s, want 1.%s", v.Major, v.Minor, floorMinor)
	}
	t.Logf("kube-apiserver %s", v.GitVersion)
	scheme := kruntime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	c = client.WithFieldValidation(c, metav1.FieldValidationStrict)
	ctx := context.Background()

	// The CRD, client-side: created with its whole self in the annotation.
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "config", "crd", "bases", "stratops.dev_strategies.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.UnmarshalStrict(raw, crd); err != nil {
		t.Fatal(err)
	}
	lastApplied, err := json.Marshal(crd)
	if err != nil {
		t.Fatal(err)
	}
	crd.Annotations["kubectl.kubernetes.io/last-applied-configuration"] = string(lastApplied)
	if err := c.Create(ctx, crd); err != nil {
		t.Fatalf("applying the CRD client-side on 1.%s: %v", floorMinor, err)
	}

	// stratops.yaml, server-side, as the README installs it.
	manifest, err := os.ReadFile(filepath.Join(tool(t, "DIST"), "stratops.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	objs := decodeObjects(t, string(manifest))
	for _, o := range objs {
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(o), client.FieldOwner("kubectl"), client.ForceOwnership); err != nil {
			t.Fatalf("kubectl apply --server-side -f stratops.yaml on 1.%s: %s %s: %v", floorMinor, o.GetKind(), o.GetName(), err)
		}
	}
	t.Logf("stratops.yaml: %d objects applied server-side", len(objs))

	strategy := func(name string, hostNetwork bool) *unstructured.Unstructured {
		s := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "stratops.dev/v1", "kind": "Strategy",
			"metadata": map[string]any{"name": name, "namespace": "default"},
			"spec": map[string]any{"mode": "Backtest", "engine": map[string]any{"template": map[string]any{"spec": map[string]any{
				"hostNetwork": hostNetwork,
				"containers":  []any{map[string]any{"name": "engine", "image": "engine:1"}},
			}}}},
		}}
		return s
	}
	if err := c.Create(ctx, strategy("valid", false), client.DryRunAll); err != nil {
		t.Fatalf("a valid Strategy on 1.%s: %v", floorMinor, err)
	}
	// The policies take effect once the API server has loaded them.
	var refusal error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		if refusal = c.Create(ctx, strategy("host-network", true), client.DryRunAll); refusal != nil {
			break
		}
	}
	if refusal == nil || !strings.Contains(refusal.Error(), "stratops-engine-template") || !strings.Contains(refusal.Error(), "hostNetwork") {
		t.Fatalf("an engine on the host's network on 1.%s: %v; want the policy stratops-engine-template's refusal", floorMinor, refusal)
	}
	t.Logf("refused on 1.%s: %v", floorMinor, refusal)
}
