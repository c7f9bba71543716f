//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// helmBin builds helm into bin/ (make helm) and returns its path.
func helmBin(t *testing.T) string {
	t.Helper()
	if out, err := exec.Command("make", "-s", "-C", root, "helm").CombinedOutput(); err != nil {
		t.Fatalf("make helm: %v\n%s", err, out)
	}
	bins, _ := filepath.Glob(filepath.Join(root, "bin", "helm-v*"))
	if len(bins) == 0 {
		t.Fatal("make helm built no bin/helm-v*")
	}
	return bins[len(bins)-1]
}

// TestHelmTakesOverARunningOperator moves a running stratops from the
// release's stratops.yaml to the release's chart, as the README says, with
// a Live engine running: helm install --take-ownership adopts every object
// (the manager is not even restarted: the chart renders the same pod),
// helm test passes, then helm upgrade changes the log level, which rolls the manager; the engine pod
// keeps its UID throughout and the Strategy stays Ready. The cluster goes
// back to stratops.yaml afterwards.
func TestHelmTakesOverARunningOperator(t *testing.T) {
	timed(t)
	helm := helmBin(t)
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(helm, args...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "KUBECONFIG="+kc.Kubeconfig)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	chart := filepath.Join(dist, "stratops-"+version+".tgz")
	ns := namespace(t, "e2e-helm")
	srv := hostRedis(t)
	readyLiveWithEngine(t, ns, "helm", srv.Addr, nil)
	var engine types.UID
	eventually(t, 60*time.Second, "the engine pod runs", func() (err error) { engine, err = oneEnginePod(ns, "helm"); return err })
	managerPods := func() map[types.UID]bool {
		t.Helper()
		pods, err := cs.CoreV1().Pods(operatorNS).List(context.Background(), metav1.ListOptions{
			LabelSelector: "app.kubernetes.io/name=stratops,app.kubernetes.io/component=manager"})
		if err != nil {
			t.Fatal(err)
		}
		uids := map[types.UID]bool{}
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil {
				uids[p.UID] = true
			}
		}
		return uids
	}
	before := managerPods()
	t.Cleanup(func() {
		// Back to stratops.yaml, whatever happened: uninstalling keeps the
		// CRD (and so every Strategy); applying stratops.yaml makes the
		// rest again.
		cmd := exec.Command(helm, "uninstall", "stratops", "-n", operatorNS, "--wait")
		cmd.Env = append(os.Environ(), "KUBECONFIG="+kc.Kubeconfig)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Logf("helm uninstall: %v\n%s", err, out)
		}
		// The kept CRD is still co-owned by Helm's field manager: a later
		// kubectl apply --server-side of a CRD that differs (another
		// release's) would conflict with it. Drop Helm's entry.
		if err := dropFieldManager("strategies.stratops.dev", "helm"); err != nil {
			t.Errorf("releasing Helm's fields of the CRD: %v", err)
		}
		if err := deployOperator(); err != nil {
			t.Errorf("reinstalling stratops.yaml: %v", err)
		}
	})

	// The release's chart with its defaults: it names the release's image.
	values := []string{"-n", operatorNS, "--wait", "--timeout", "3m"}
	run(append([]string{"install", "stratops", chart, "--take-ownership", "--force-conflicts"}, values...)...)
	d, err := deployment(operatorNS, managerApp)
	if err != nil {
		t.Fatal(err)
	}
	if d.Annotations["meta.helm.sh/release-name"] != "stratops" {
		t.Fatalf("the manager's Deployment is not the release's: %v", d.Annotations)
	}
	if out, err := kubectl("-n", operatorNS, "rollout", "status", "deployment/"+managerApp, "--timeout=180s"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if after := managerPods(); !maps.Equal(before, after) {
		t.Errorf("the install replaced the manager's pods (%v → %v): the chart's defaults differ from config/", before, after)
	}
	if out := run("status", "stratops", "-n", operatorNS); !strings.Contains(out, "STATUS: deployed") {
		t.Fatalf("helm status:\n%s", out)
	}
	// helm test: the chart's own check, as its ServiceAccount (the
	// manager is available; a valid Strategy is admitted, an invalid one
	// refused).
	if out := run("test", "stratops", "-n", operatorNS, "--timeout", "3m"); !strings.Contains(out, "Succeeded") {
		t.Fatalf("helm test:\n%s", out)
	}

	start := time.Now()
	run(append([]string{"upgrade", "stratops", chart, "--force-conflicts", "--set", "logLevel=debug"}, values...)...)
	if out, err := kubectl("-n", operatorNS, "rollout", "status", "deployment/"+managerApp, "--timeout=180s"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	d, err = deployment(operatorNS, managerApp)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(d.Spec.Template.Spec.Containers[0].Args, " "), "--zap-log-level=debug") {
		t.Fatalf("the upgrade did not reach the manager: %v", d.Spec.Template.Spec.Containers[0].Args)
	}
	t.Logf("the manager rolled to the upgraded release in %s", time.Since(start).Round(time.Second))
	if out, err := kubectl("-n", ns, "wait", "--for=condition=Ready", "strategy/helm", "--timeout=120s"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(2 * time.Second) {
		uid, err := oneEnginePod(ns, "helm")
		if err != nil || uid != engine {
			t.Fatalf("after the move to Helm the engine pod is %s (was %s): %v", uid, engine, err)
		}
		s, err := getStrategy(ns, "helm")
		if err != nil {
			t.Fatal(err)
		}
		if c := condition(s, "Ready"); c == nil || c.Status != "True" {
			t.Fatalf("the Strategy is not Ready under the chart's manager: %s", fmt.Sprint(c))
		}
	}
	t.Logf("the engine pod %s kept its UID from stratops.yaml to helm install and upgrade", engine)
}

// dropFieldManager removes a field manager's entries from a CRD's
// managedFields (a JSON patch, tested against the entry it removes), so
// that the fields it owned are left to their other managers.
func dropFieldManager(crdName, manager string) error {
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Name: crdName}, crd); err != nil {
		return err
	}
	var ops []string
	for i := len(crd.ManagedFields) - 1; i >= 0; i-- {
		if crd.ManagedFields[i].Manager == manager {
			ops = append(ops, fmt.Sprintf(`{"op":"test","path":"/metadata/managedFields/%d/manager","value":%q},{"op":"remove","path":"/metadata/managedFields/%d"}`, i, manager, i))
		}
	}
	if len(ops) == 0 {
		return nil
	}
	patch := []byte("[" + strings.Join(ops, ",") + "]")
	return k8s.Patch(context.Background(), crd, client.RawPatch(types.JSONPatchType, patch))
}
