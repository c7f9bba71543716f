package install

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// TestCRD_TakesEveryApplyPath: client-side kubectl apply (and Argo CD's
// default sync) keeps the whole object in the last-applied-configuration
// annotation, which the API server caps at 256 KiB. The CRD, as written,
// is applied that way to the real API server; and every field of
// stratops's own keeps its description (kubectl explain), only the
// embedded pod template's upstream ones are left out.
func TestCRD_TakesEveryApplyPath(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "config", "crd", "bases", "stratops.dev_strategies.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	file := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.UnmarshalStrict(raw, file); err != nil {
		t.Fatal(err)
	}
	lastApplied, err := json.Marshal(file)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the CRD: %d bytes of YAML, %d of JSON in the annotation", len(raw), len(lastApplied))

	a := startAPIServer(t)
	ctx := context.Background()
	live := &apiextensionsv1.CustomResourceDefinition{}
	if err := a.client.Get(ctx, client.ObjectKey{Name: file.Name}, live); err != nil {
		t.Fatal(err)
	}
	applied := file.DeepCopy()
	applied.ResourceVersion = live.ResourceVersion
	applied.Annotations["kubectl.kubernetes.io/last-applied-configuration"] = string(lastApplied)
	// A dry run: validated as the real update is (the annotation's limit
	// included), and the package's other tests keep the CRD as it was.
	if err := a.client.Update(ctx, applied, client.DryRunAll); err != nil {
		t.Fatalf("applying the CRD client-side: %v", err)
	}

	for _, v := range file.Spec.Versions {
		var undocumented []string
		var walk func(path string, s apiextensionsv1.JSONSchemaProps)
		walk = func(path string, s apiextensionsv1.JSONSchemaProps) {
			if path == "spec.engine.template" {
				return
			}
			for name, p := range s.Properties {
				child := strings.TrimPrefix(path+"."+name, ".")
				if p.Description == "" && child != "metadata" && child != "apiVersion" && child != "kind" {
					undocumented = append(undocumented, child)
				}
				walk(child, p)
				if p.Items != nil && p.Items.Schema != nil {
					walk(child+"[]", *p.Items.Schema)
				}
			}
		}
		walk("", *v.Schema.OpenAPIV3Schema)
		if len(undocumented) > 0 {
			t.Errorf("version %s: fields without a description (kubectl explain shows nothing): %v", v.Name, undocumented)
		}
	}
}
