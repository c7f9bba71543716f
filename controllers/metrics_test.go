package controllers

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stratv1 "github.com/stratops/stratops/api/v1"
)

// strategiesReader holds Strategies as a cache would.
type strategiesReader struct {
	client.Reader
	items []stratv1.Strategy
}

func (r *strategiesReader) List(_ context.Context, list client.ObjectList, _ ...client.ListOption) error {
	list.(*stratv1.StrategyList).Items = r.items
	return nil
}

// TestStatusMetrics_SayWhatTheCacheHoldsWhileItsManagerLeads: the status
// series are made at scrape time from the leading manager's reader, every
// phase with a series (1 for the current one), one series per condition,
// channel, key and probe, consistent with what the collector describes
// (a pedantic registry checks it); a Strategy gone from the reader has
// none; with no manager leading there are none at all.
func TestStatusMetrics_SayWhatTheCacheHoldsWhileItsManagerLeads(t *testing.T) {
	ttl := int64(3600)
	s := stratv1.Strategy{ObjectMeta: metav1.ObjectMeta{Namespace: "metrics-unit", Name: "s"}, Spec: stratv1.StrategySpec{Mode: stratv1.ModeLive}}
	s.Status.Phase = stratv1.PhaseHalted
	s.Status.Conditions = []metav1.Condition{
		{Type: stratv1.ConditionReady, Status: metav1.ConditionFalse, Reason: stratv1.ReasonRedisLost},
		{Type: stratv1.ConditionRedisReady, Status: metav1.ConditionFalse, Reason: stratv1.ReasonRedisLost},
	}
	s.Status.Redis = &stratv1.RedisStatus{FailingSince: &metav1.Time{}, Probes: []stratv1.ProbeResult{{Name: "ping"}}}
	s.Status.Channels = []stratv1.ChannelStatus{{Name: "orders:placed", Healthy: true}}
	s.Status.Keys = []stratv1.KeyStatus{{Name: "position:snapshot", Reason: "Missing", PolicyTTLSeconds: &ttl}}
	reader := &strategiesReader{items: []stratv1.Strategy{s}}

	c := &statusCollector{}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 0 {
		t.Fatalf("with no manager leading: %d series (%v); want none", n, err)
	}
	release := c.use(reader)
	count := func(name string) int {
		t.Helper()
		n, err := testutil.GatherAndCount(reg, name)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	for name, want := range map[string]int{
		"stratops_strategy_phase": len(allPhases), "stratops_strategy_condition": 2,
		"stratops_strategy_condition_last_transition_timestamp_seconds": 2, "stratops_redis_failing_since_timestamp_seconds": 1,
		"stratops_redis_probe_ok": 1, "stratops_channel_healthy": 1, "stratops_key_healthy": 1, "stratops_key_policy_ttl_seconds": 1,
	} {
		if got := count(name); got != want {
			t.Errorf("%s: %d series; want %d", name, got, want)
		}
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	halted := false
	for _, f := range families {
		for _, m := range f.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if f.GetName() == "stratops_strategy_phase" && l["phase"] == "Halted" {
				halted = m.GetGauge().GetValue() == 1 && l["mode"] == "Live"
			}
			if f.GetName() == "stratops_strategy_condition" && l["type"] == "Ready" && (l["status"] != "False" || l["reason"] != "RedisLost") {
				t.Errorf("Ready series %v; want status False, reason RedisLost", l)
			}
		}
	}
	if !halted {
		t.Error("no Halted phase series of value 1")
	}

	reader.items = nil
	if n := count("stratops_strategy_phase"); n != 0 {
		t.Errorf("a Strategy gone from the cache has %d phase series", n)
	}
	reader.items = []stratv1.Strategy{s}
	release()
	if n, _ := testutil.GatherAndCount(reg); n != 0 {
		t.Errorf("after the manager stopped leading: %d series; want none", n)
	}
}
