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
// 30 s) while UpdatePending says how to approve it; approved, the pod is
// replaced exactly once.
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

	if out, err := kubectl("-n", ns, "annotate", "strat/held", stratopsv1.AnnotationApproveRevision+"="+want, "--overwrite"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
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
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(2 * time.Second) {
		if uid, err := onePod(); err != nil || uid != after {
			t.Fatalf("after approval the pod was replaced again: %s (was %s): %v", uid, after, err)
		}
	}
	s, err := getStrategy(ns, "held")
	if err != nil {
		t.Fatal(err)
	}
	if c := condition(s, stratopsv1.ConditionUpdatePending); c != nil {
		t.Errorf("UpdatePending stays after approval: %s", c.Message)
	}
	if s.Status.Engine.Revision != want {
		t.Errorf("status.engine.revision %s, want %s", s.Status.Engine.Revision, want)
	}
}
