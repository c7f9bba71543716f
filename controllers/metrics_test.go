package controllers

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/redisprobe"
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

// TestHealthMetrics_SayTheLastReadOutOfTheLeadersChecks: the health series
// are made at scrape time from the last read-out each Strategy's checks
// made, kept while a later check fails (as status keeps it), gone with
// the Strategy's checks, and none while no manager leads.
func TestHealthMetrics_SayTheLastReadOutOfTheLeadersChecks(t *testing.T) {
	nn := types.NamespacedName{Namespace: "metrics-unit", Name: "h"}
	rc := newRedisChecks()
	st := rc.state(nn, "setting", 0, time.Time{})
	now := time.Now()
	st.record(checkOutcome{health: &redisprobe.Health{
		Channels: []redisprobe.ChannelHealth{
			{Name: "orders:placed", Subscribers: 2, Healthy: true, LastMessageTime: now},
			{Name: "risk:calculated", Subscribers: 0, Reason: redisprobe.ReasonTooFewSubscribers},
		},
		Keys: []redisprobe.KeyHealth{
			{Name: "position:snapshot", Present: true, TTL: 90 * time.Second, Healthy: true},
			{Name: "risk:limits", Present: false, Reason: redisprobe.ReasonMissing},
			{Name: "config:static", Present: true, TTL: -1, Healthy: true},
		},
	}}, now)

	c := &healthCollector{}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	if n, _ := testutil.GatherAndCount(reg); n != 0 {
		t.Fatalf("with no manager leading: %d series", n)
	}
	release := c.use(rc)
	want := `
# HELP stratops_channel_subscribers PUBSUB NUMSUB of each channel of each Strategy.
# TYPE stratops_channel_subscribers gauge
stratops_channel_subscribers{channel="orders:placed",namespace="metrics-unit",strategy="h"} 2
stratops_channel_subscribers{channel="risk:calculated",namespace="metrics-unit",strategy="h"} 0
# HELP stratops_healthy Healthy channels or keys of each Strategy.
# TYPE stratops_healthy gauge
stratops_healthy{kind="channels",namespace="metrics-unit",strategy="h"} 1
stratops_healthy{kind="keys",namespace="metrics-unit",strategy="h"} 2
# HELP stratops_key_ttl_seconds Remaining TTL of each key of each Strategy (-1: none, -2: missing).
# TYPE stratops_key_ttl_seconds gauge
stratops_key_ttl_seconds{key="config:static",namespace="metrics-unit",strategy="h"} -1
stratops_key_ttl_seconds{key="position:snapshot",namespace="metrics-unit",strategy="h"} 90
stratops_key_ttl_seconds{key="risk:limits",namespace="metrics-unit",strategy="h"} -2
# HELP stratops_total Channels or keys of each Strategy.
# TYPE stratops_total gauge
stratops_total{kind="channels",namespace="metrics-unit",strategy="h"} 2
stratops_total{kind="keys",namespace="metrics-unit",strategy="h"} 3
`
	names := []string{"stratops_channel_subscribers", "stratops_healthy", "stratops_key_ttl_seconds", "stratops_total"}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	if n, _ := testutil.GatherAndCount(reg, "stratops_channel_last_message_timestamp_seconds"); n != 1 {
		t.Errorf("%d last-message series; want 1 (the channel that saw none has none)", n)
	}

	// A failed check keeps the last read-out in the series.
	st.record(checkOutcome{failed: &redisprobe.Result{Name: "ping"}}, now)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Errorf("after a failed check: %v", err)
	}
	rc.forget(nn.String())
	if n, _ := testutil.GatherAndCount(reg); n != 0 {
		t.Errorf("a forgotten Strategy has %d series", n)
	}
	rc.state(nn, "setting", 0, time.Time{}).record(checkOutcome{health: &redisprobe.Health{}}, now)
	release()
	if n, _ := testutil.GatherAndCount(reg); n != 0 {
		t.Errorf("after the manager stopped leading: %d series", n)
	}
}
