//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// TestUpgradeKeepsTheEngine deploys the previous release (its own tree and
// image, with its own make deploy), runs a Live Strategy with an engine on
// it, then deploys this release over it: the new operator adopts what runs
// (its logger rolls; it says so of the engine) and the engine pod keeps its
// UID. The manager is this release's again afterwards.
func TestUpgradeKeepsTheEngine(t *testing.T) {
	timed(t)
	if previous == "" {
		// A checkout without the previous release's commit (a shallow
		// clone, a tarball): make e2e said so; envtest covers the adoption.
		t.Skip("no previous release to upgrade from (STRATOPS_E2E_PREVIOUS): its commit is not in this checkout")
	}
	deploy := func(dir, img string) {
		t.Helper()
		cmd := exec.Command("make", "-C", dir, "deploy", "IMG="+img, "LOCALBIN="+filepath.Join(root, "bin"))
		cmd.Env = append(os.Environ(), "KUBECONFIG="+kc.Kubeconfig)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make deploy IMG=%s in %s: %v\n%s", img, dir, err, out)
		}
		if out, err := kubectl("-n", operatorNS, "rollout", "status", "deployment/"+managerApp, "--timeout=180s"); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	t.Log("the previous release")
	deploy(previous, os.Getenv("STRATOPS_E2E_PREVIOUS_IMG"))
	t.Cleanup(func() {
		// This release again, whatever happened.
		if err := deployOperator(); err != nil {
			t.Errorf("redeploying this release: %v", err)
		}
	})

	ns := namespace(t, "e2e-upgrade")
	srv := hostRedis(t)
	readyLiveWithEngine(t, ns, "upg", srv.Addr, nil)
	onePod := func() (types.UID, error) { return oneEnginePod(ns, "upg") }
	var before types.UID
	eventually(t, 60*time.Second, "the engine pod runs", func() (err error) { before, err = onePod(); return err })

	t.Log("this release, over it")
	if err := deployOperator(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 90*time.Second, "the new operator reconciled the Strategy", func() error {
		s, err := getStrategy(ns, "upg")
		if err != nil {
			return err
		}
		if s.Status.EventLogger == nil || s.Status.EventLogger.Revision == "" {
			return fmt.Errorf("no logger revision in status yet")
		}
		ok, err := hasEvent(ns, "upg", "Warning", "EngineIdentityPending")
		if err != nil || !ok {
			return fmt.Errorf("no EngineIdentityPending event yet (%v)", err)
		}
		return nil
	})
	if out, err := kubectl("-n", ns, "wait", "--for=condition=Ready", "strategy/upg", "--timeout=180s"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(2 * time.Second) {
		if uid, err := onePod(); err != nil || uid != before {
			t.Fatalf("after the upgrade the engine pod is %s (was %s): %v", uid, before, err)
		}
	}
	t.Logf("the engine pod %s kept its UID across the upgrade", before)
}
