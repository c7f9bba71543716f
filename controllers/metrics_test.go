package controllers

import (
	"testing"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	stratv1 "github.com/stratops/stratops/api/v1"
)

// TestExportStatus_KeepsTheSeriesThatStay: a new status replaces the
// series that changed and leaves the others in place: the same series,
// never deleted and written again (a scrape in between would miss it and
// an alert's `for` would start over); forgetting the Strategy drops all.
func TestExportStatus_KeepsTheSeriesThatStay(t *testing.T) {
	s := &stratv1.Strategy{ObjectMeta: metav1.ObjectMeta{Namespace: "metrics-unit", Name: "s"}, Spec: stratv1.StrategySpec{Mode: stratv1.ModeLive}}
	s.Status.Phase = stratv1.PhaseRunning
	s.Status.Conditions = []metav1.Condition{
		{Type: stratv1.ConditionReady, Status: metav1.ConditionTrue, Reason: stratv1.ReasonSucceeded},
		{Type: stratv1.ConditionRedisReady, Status: metav1.ConditionTrue, Reason: stratv1.ReasonSucceeded},
	}
	exportStatus(s)
	halted, err := strategyPhase.GetMetricWithLabelValues("metrics-unit", "s", "Live", "Halted")
	if err != nil {
		t.Fatal(err)
	}
	redisReady, _ := strategyCondition.GetMetricWithLabelValues("metrics-unit", "s", stratv1.ConditionRedisReady, "True", stratv1.ReasonSucceeded)

	s.Status.Phase = stratv1.PhaseHalted
	s.Status.Conditions[0] = metav1.Condition{Type: stratv1.ConditionReady, Status: metav1.ConditionFalse, Reason: stratv1.ReasonRedisLost}
	exportStatus(s)
	if again, _ := strategyPhase.GetMetricWithLabelValues("metrics-unit", "s", "Live", "Halted"); again != halted {
		t.Error("the Halted phase series was deleted and made again")
	}
	if v := testutil.ToFloat64(halted); v != 1 {
		t.Errorf("Halted = %v", v)
	}
	if again, _ := strategyCondition.GetMetricWithLabelValues("metrics-unit", "s", stratv1.ConditionRedisReady, "True", stratv1.ReasonSucceeded); again != redisReady {
		t.Error("an unchanged condition's series was deleted and made again")
	}
	if n := testutil.CollectAndCount(strategyCondition); n < 2 {
		t.Fatalf("%d condition series", n)
	}
	// The Ready condition has one series: the True one is gone.
	if _, ok := seriesOf(t, "stratops_strategy_condition", map[string]string{"namespace": "metrics-unit", "type": "Ready", "status": "True"}); ok {
		t.Error("the Ready=True series outlived the condition's change")
	}
	if _, ok := seriesOf(t, "stratops_strategy_condition", map[string]string{"namespace": "metrics-unit", "type": "Ready", "status": "False", "reason": "RedisLost"}); !ok {
		t.Error("no Ready=False series")
	}

	forgetMetrics("metrics-unit", "s")
	if _, ok := seriesOf(t, "stratops_strategy_phase", map[string]string{"namespace": "metrics-unit"}); ok {
		t.Error("the phase series outlived forgetMetrics")
	}
}

func seriesOf(t *testing.T, name string, want map[string]string) (float64, bool) {
	t.Helper()
	return gaugeOf(NewWithT(t), name, want)
}
