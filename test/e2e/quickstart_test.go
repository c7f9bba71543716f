//go:build e2e

package e2e

import (
	"os"
	"os/exec"
	"testing"
)

// TestQuickstart_SamplesTurnReadyAsTheREADMESays: the README's quickstart,
// `kubectl apply -k config/samples` on a fresh cluster with the operator
// installed, brings up the samples' Redis (its Deployment, Service and
// labelled credentials Secret), and both sample Strategies, which name it
// by its Service's DNS name and its password Secret, turn Ready.
func TestQuickstart_SamplesTurnReadyAsTheREADMESays(t *testing.T) {
	timed(t)
	managerLogsOnFailure(t)
	k := func(args ...string) (string, error) {
		cmd := exec.Command("kubectl", args...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "KUBECONFIG="+kc.Kubeconfig)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := k("apply", "-k", "config/samples"); err != nil {
		t.Fatalf("kubectl apply -k config/samples: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := k("delete", "-k", "config/samples", "--wait"); err != nil {
			t.Errorf("kubectl delete -k config/samples: %v\n%s", err, out)
		}
	})
	if out, err := k("wait", "--for=condition=Ready", "strategy/eth-basis", "strategy/btc-carry-backtest", "--timeout=180s"); err != nil {
		out2, _ := k("get", "strategies,pods", "-o", "wide")
		t.Fatalf("the samples did not turn Ready: %v\n%s\n%s", err, out, out2)
	}
	out, _ := k("get", "strategies")
	t.Logf("kubectl get strategies:\n%s", out)
	s, err := getStrategy("default", "eth-basis")
	if err != nil {
		t.Fatal(err)
	}
	if c := condition(s, "RedisReady"); c == nil || c.Status != "True" {
		t.Fatalf("the Live sample's RedisReady is %v", c)
	}
}
