package install

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestChart_TakesOverAMakeDeployInstall: what make deploy applied
// (kustomize, server-side) is adopted by `helm install --take-ownership`
// --force-conflicts with release stratops in stratops-system, as the
// README says: the same objects, now the release's; an upgrade changing a
// value needs --force-conflicts once more (kubectl co-owns the fields it
// set); helm uninstall keeps the CRD.
func TestChart_TakesOverAMakeDeployInstall(t *testing.T) {
	api := startAPIServer(t)
	kubeconfig := api.kubeconfig(t)
	helm := func(args ...string) (string, error) {
		t.Helper()
		return run(t, tool(t, "HELM"), append([]string{"--kubeconfig", kubeconfig}, args...)...)
	}
	// make deploy's manifests, applied as make deploy applies them
	// (kubectl apply --server-side: field manager "kubectl").
	ctx := context.Background()
	for _, dir := range []string{"config/default", "config/policy"} {
		out, err := run(t, tool(t, "KUSTOMIZE"), "build", dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range decodeObjects(t, out) {
			if err := api.client.Apply(ctx, client.ApplyConfigurationFromUnstructured(o), client.FieldOwner("kubectl")); err != nil {
				t.Fatalf("applying %s: %v", key(o), err)
			}
		}
	}
	key := client.ObjectKey{Namespace: "stratops-system", Name: "stratops-controller-manager"}
	before := &appsv1.Deployment{}
	if err := api.client.Get(ctx, key, before); err != nil {
		t.Fatal(err)
	}

	if out, err := helm("install", "stratops", chartDir, "-n", "stratops-system"); err == nil {
		t.Fatalf("helm install over make deploy's objects without --take-ownership succeeded:\n%s", out)
	}
	if out, err := helm("install", "stratops", chartDir, "-n", "stratops-system", "--take-ownership", "--force-conflicts"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	after := &appsv1.Deployment{}
	if err := api.client.Get(ctx, key, after); err != nil {
		t.Fatal(err)
	}
	if after.UID != before.UID {
		t.Errorf("the manager's Deployment was replaced, not adopted")
	}
	// The chart renders make deploy's pod: the takeover must not roll the
	// manager. (Helm's apply bumps the generation, the spec unchanged:
	// no new ReplicaSet comes of it; e2e checks the pods keep their UIDs.)
	if !equality.Semantic.DeepEqual(before.Spec.Template, after.Spec.Template) {
		b1, _ := json.MarshalIndent(before.Spec.Template, "", " ")
		b2, _ := json.MarshalIndent(after.Spec.Template, "", " ")
		t.Errorf("the takeover changed the manager's pod template: its pods would roll:\n%s", lineDiff(string(b1), string(b2)))
	}
	// Fields make deploy set to the chart's values stay co-owned by
	// kubectl: an upgrade that changes one conflicts, unless it forces.
	if _, err := helm("upgrade", "stratops", chartDir, "-n", "stratops-system", "--set", "replicaCount=3"); err == nil ||
		!strings.Contains(err.Error(), "conflict") {
		t.Errorf("an upgrade changing a field kubectl co-owns: %v, want a conflict", err)
	}
	if out, err := helm("upgrade", "stratops", chartDir, "-n", "stratops-system", "--set", "replicaCount=3", "--force-conflicts"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if err := api.client.Get(ctx, key, after); err != nil {
		t.Fatal(err)
	}
	if *after.Spec.Replicas != 3 {
		t.Errorf("helm upgrade --set replicaCount=3: replicas %d", *after.Spec.Replicas)
	}
	if out, err := helm("uninstall", "stratops", "-n", "stratops-system"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := api.client.Get(ctx, client.ObjectKey{Name: "strategies.stratops.dev"}, crd); err != nil || !crd.DeletionTimestamp.IsZero() {
		t.Errorf("helm uninstall deleted the CRD: %v", err)
	}
	if err := api.client.Get(ctx, key, after); err == nil {
		t.Errorf("helm uninstall left the manager's Deployment")
	}

	// The kept CRD is still co-owned by Helm: applying another version of
	// it (an older release's make install) conflicts, as the README says,
	// until the apply forces.
	out, err := run(t, tool(t, "KUSTOMIZE"), "build", "config/crd")
	if err != nil {
		t.Fatal(err)
	}
	other := decodeObjects(t, out)[0]
	versions, _, _ := unstructured.NestedSlice(other.Object, "spec", "versions")
	if err := unstructured.SetNestedField(versions[0].(map[string]any), "another release's schema", "schema", "openAPIV3Schema", "description"); err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedSlice(other.Object, versions, "spec", "versions"); err != nil {
		t.Fatal(err)
	}
	err = api.client.Apply(ctx, client.ApplyConfigurationFromUnstructured(other), client.FieldOwner("kubectl"))
	if err == nil || !strings.Contains(err.Error(), `"helm"`) {
		t.Errorf("applying another CRD after helm uninstall: %v, want a conflict with helm", err)
	}
	if err := api.client.Apply(ctx, client.ApplyConfigurationFromUnstructured(other), client.FieldOwner("kubectl"), client.ForceOwnership); err != nil {
		t.Errorf("the same, forced: %v", err)
	}
}
