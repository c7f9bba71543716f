//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	stratopsv1 "github.com/stratops/stratops/api/v1"
)

// TestManualUpdateHeldThenApproved: with updateStrategy Manual, an edit of
// a running Live Strategy's engine leaves its pod alone (the same UID for
// 30 s) while UpdatePending says how to approve it. The approval is
// written and the leading manager's container SIGKILLed at once, in the
// middle of acting on it: the engine Deployment gains exactly one new
// ReplicaSet, no two engine pods ever run together, the pod is replaced
// exactly once, and status.engine.revision ends at the approved one.
func TestManualUpdateHeldThenApproved(t *testing.T) {
	timed(t)
	ns := namespace(t, "e2e-manual")
	srv := hostRedis(t)
	readyLiveWithEngine(t, ns, "held", srv.Addr, func(s *stratopsv1.Strategy) { s.Spec.Engine.UpdateStrategy = stratopsv1.UpdateManual })
	onePod := func() (types.UID, error) { return oneEnginePod(ns, "held") }
	var before types.UID
	eventually(t, 60*time.Second, "the engine pod runs", func() (err error) { before, err = onePod(); return err })

	if out, err := kubectl("-n", ns, "patch", "strategy", "held", "--type=json",
		`-p=[{"op":"replace","path":"/spec/engine/template/spec/containers/0/args","value":["--interval=700ms","--malformed-every=20"]}]`); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var want string
	eventually(t, 30*time.Second, "UpdatePending with the approve command", func() error {
		s, err := getStrategy(ns, "held")
		if err != nil {
			return err
		}
		c := condition(s, stratopsv1.ConditionUpdatePending)
		if c == nil || s.Status.Engine == nil {
			return fmt.Errorf("no UpdatePending yet")
		}
		want = s.Status.Engine.UpdateRevision
		if !strings.Contains(c.Message, "stratops.dev/approve-revision="+want) {
			return fmt.Errorf("UpdatePending: %s", c.Message)
		}
		return nil
	})
	t.Log("held: the engine pod must keep its UID for 30 s")
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(2 * time.Second) {
		uid, err := onePod()
		if err != nil || uid != before {
			t.Fatalf("while held: pod %s (was %s): %v", uid, before, err)
		}
	}

	replicaSets := func() (map[string]bool, error) {
		out, err := kubectl("-n", ns, "get", "replicasets", "-l", "app.kubernetes.io/component=engine,stratops.dev/strategy=held",
			"-o", "jsonpath={range .items[*]}{.metadata.name}{\"\\n\"}{end}")
		set := map[string]bool{}
		for _, n := range strings.Fields(out) {
			set[n] = true
		}
		return set, err
	}
	rsBefore, err := replicaSets()
	if err != nil {
		t.Fatal(err)
	}
	overlap := watchEngineOverlap(t, ns, "held")
	leader := leaderPod(t)
	// kubectl stratops approve, as a user who may edit Strategies but not
	// approve (the policy refuses, naming the verb), then as one bound to
	// stratops-strategy-approver too.
	bindUsers(t, ns)
	out, err := plugin(t, "--as", "trader", "-n", ns, "approve", "held", "--yes")
	if err == nil || !strings.Contains(out, "may not approve strategies in namespace "+ns) {
		t.Fatalf("approve without stratops-strategy-approver: %v\n%s", err, out)
	}
	t.Logf("kubectl stratops approve as trader (edit only) is refused:\n%s", out)
	if out, err := plugin(t, "--as", "approver", "-n", ns, "approve", "held", "--yes"); err != nil || !strings.Contains(out, "approved revision "+want) {
		t.Fatalf("kubectl stratops approve as approver: %v\n%s", err, out)
	}
	approvedAt := time.Now()
	sigkill(t, operatorNS, leader, "manager")
	t.Logf("approved %s and SIGKILLed the leading manager %s", want, leader)
	var after types.UID
	eventually(t, 90*time.Second, "the approved revision's pod runs", func() error {
		uid, err := onePod()
		if err != nil {
			return err
		}
		if uid == before {
			return fmt.Errorf("still the held pod")
		}
		after = uid
		return nil
	})
	replaced := time.Since(approvedAt)
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(2 * time.Second) {
		if uid, err := onePod(); err != nil || uid != after {
			t.Fatalf("after approval the pod was replaced again: %s (was %s): %v", uid, after, err)
		}
	}
	most := overlap()
	if most > 1 {
		t.Errorf("%d engine pods ran at once across the approval", most)
	}
	followEvents(t, ns, "held", srv.Addr)
	rsAfter, err := replicaSets()
	if err != nil {
		t.Fatal(err)
	}
	var added []string
	for n := range rsAfter {
		if !rsBefore[n] {
			added = append(added, n)
		}
	}
	t.Logf("manager SIGKILLed on approval: the approved revision's pod ran %s later; ReplicaSets %d → %d; at most %d engine pod(s) running at once",
		replaced.Round(100*time.Millisecond), len(rsBefore), len(rsAfter), most)
	if len(added) != 1 || len(rsAfter) != len(rsBefore)+1 {
		t.Errorf("the engine Deployment's ReplicaSets went from %v to %v; want exactly one new one", rsBefore, rsAfter)
	}
	// The leader SIGKILLed may have rolled the engine and died before its
	// status write: the status is the next leader's to write, once it
	// holds the lease (at most the lease's 15 s after the kill) and its
	// first reconcile sees the rollout done.
	eventually(t, 60*time.Second, "the status says the approved revision runs", func() error {
		s, err := getStrategy(ns, "held")
		if err != nil {
			return err
		}
		if c := condition(s, stratopsv1.ConditionUpdatePending); c != nil {
			return fmt.Errorf("UpdatePending stays after approval: %s", c.Message)
		}
		if s.Status.Engine == nil || s.Status.Engine.Revision != want {
			return fmt.Errorf("status.engine %+v, want revision %s", s.Status.Engine, want)
		}
		return nil
	})
	t.Logf("the status said the approved revision runs %s after the approval", time.Since(approvedAt).Round(100*time.Millisecond))
}
