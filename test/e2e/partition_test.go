//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stratopsv1 "github.com/stratops/stratops/api/v1"
)

// TestAPartitionOfTheOperatorAloneHaltsNothing cuts only the manager
// pods' path to a Live Strategy's Redis (a host rule dropping their
// packets), as a NetworkPolicy on the operator's namespace or a fault on
// its node would: the operator's probes fail for as long as a loss takes,
// but the event logger, still ready, says Redis is there. RedisReady goes
// Unknown, OperatorCannotReachRedis; the Strategy is never Halted; the
// engine pod keeps its UID and its events keep reaching the history. The
// rule removed, RedisReady is True again.
func TestAPartitionOfTheOperatorAloneHaltsNothing(t *testing.T) {
	timed(t)
	managerLogsOnFailure(t)
	ctx := context.Background()
	ns := namespace(t, "e2e-partition")
	srv := hostRedis(t)
	readyLiveWithEngine(t, ns, "part", srv.Addr, nil)
	var uid0 string
	eventually(t, 60*time.Second, "the engine pod runs", func() error {
		u, err := oneEnginePod(ns, "part")
		uid0 = string(u)
		return err
	})
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	historyLen := func() int64 { n, _ := rdb.XLen(ctx, "part:events:history").Result(); return n }

	// Drop what the manager pods send to Redis, and only that.
	var pods corev1.PodList
	if err := k8s.List(ctx, &pods, client.InNamespace(operatorNS)); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(srv.Addr)
	var rules [][]string
	for _, p := range pods.Items {
		if strings.HasPrefix(p.Name, managerApp) && p.Status.PodIP != "" {
			rules = append(rules, []string{"INPUT", "-s", p.Status.PodIP, "-d", host, "-p", "tcp", "--dport", port, "-j", "DROP"})
		}
	}
	if len(rules) == 0 {
		t.Fatal("no manager pod found")
	}
	removed := false
	removeRules := func() {
		if removed {
			return
		}
		removed = true
		for _, r := range rules {
			if out, err := exec.Command("iptables", append([]string{"-D"}, r...)...).CombinedOutput(); err != nil {
				t.Errorf("removing the rule %v: %v: %s", r, err, out)
			}
		}
	}
	for _, r := range rules {
		if out, err := exec.Command("iptables", append([]string{"-I", r[0], "1"}, r[1:]...)...).CombinedOutput(); err != nil {
			t.Fatalf("iptables -I %v: %v: %s", r, err, out)
		}
	}
	t.Cleanup(removeRules)
	cut := time.Now()
	before := historyLen()

	eventually(t, 120*time.Second, "RedisReady Unknown, the operator alone cannot reach Redis", func() error {
		s, err := getStrategy(ns, "part")
		if err != nil {
			return err
		}
		if s.Status.Phase == stratopsv1.PhaseHalted {
			t.Fatalf("Halted although the logger reaches Redis: %v", condition(s, stratopsv1.ConditionRedisReady))
		}
		c := condition(s, stratopsv1.ConditionRedisReady)
		if c == nil || c.Status != metav1.ConditionUnknown || c.Reason != stratopsv1.ReasonOperatorCannotReachRedis {
			return fmt.Errorf("RedisReady %+v", c)
		}
		return nil
	})
	t.Logf("RedisReady Unknown (OperatorCannotReachRedis) %s after the cut", time.Since(cut).Round(time.Second))
	// For as long again as a loss takes: never halted, the same engine
	// pod, and its events still logged.
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(2 * time.Second) {
		s, err := getStrategy(ns, "part")
		if err != nil {
			t.Fatal(err)
		}
		if s.Status.Phase != stratopsv1.PhaseRunning {
			t.Fatalf("phase %s during the operator's partition, want Running", s.Status.Phase)
		}
		if u, err := oneEnginePod(ns, "part"); err != nil || string(u) != uid0 {
			t.Fatalf("the engine pod changed (%s, %v), want %s", u, err, uid0)
		}
	}
	after := historyLen()
	if after <= before {
		t.Fatalf("the history did not grow during the operator's partition: %d then %d", before, after)
	}
	t.Logf("the history grew by %d events during the operator's partition", after-before)
	if ok, err := hasEvent(ns, "part", "Warning", stratopsv1.EventOperatorCannotReachRedis); err != nil || !ok {
		t.Fatalf("no %s Warning (%v)", stratopsv1.EventOperatorCannotReachRedis, err)
	}

	removeRules()
	eventually(t, 60*time.Second, "RedisReady True once the operator reaches Redis again", func() error {
		s, err := getStrategy(ns, "part")
		if err != nil {
			return err
		}
		if c := condition(s, stratopsv1.ConditionRedisReady); c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("RedisReady %+v", c)
		}
		return nil
	})
}
