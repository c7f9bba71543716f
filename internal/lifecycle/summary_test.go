package lifecycle

import (
	"errors"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"

	stratv1 "github.com/stratops/stratops/api/v1"
)

// TestSummarize_ConditionsPhaseAndKstatusForEachState: what Ready,
// Reconciling, Stalled, the phase and kstatus (kubectl wait, Flux, Argo
// CD) say for each outcome of a reconcile.
func TestSummarize_ConditionsPhaseAndKstatusForEachState(t *testing.T) {
	type conds map[string]bool // a step's condition: true or false
	cases := []struct {
		name        string
		mode        stratv1.StrategyMode
		policy      stratv1.RedisLossPolicy
		engine      bool
		steps       conds
		outcome     Outcome
		ready       metav1.ConditionStatus
		readyReason string
		reconciling bool
		stalled     bool
		phase       stratv1.StrategyPhase
		kstatus     kstatus.Status
		event       string
	}{
		{"Live, all steps done", stratv1.ModeLive, "", true,
			conds{stratv1.ConditionRedisReady: true, stratv1.ConditionEventLoggerReady: true, stratv1.ConditionEngineReady: true},
			Outcome{Redis: RedisOK}, metav1.ConditionTrue, stratv1.ReasonSucceeded, false, false, stratv1.PhaseRunning, kstatus.CurrentStatus, "Ready"},
		{"Live, Redis failing below the threshold: still running", stratv1.ModeLive, "", false,
			conds{stratv1.ConditionRedisReady: true, stratv1.ConditionEventLoggerReady: true},
			Outcome{Redis: RedisFailing}, metav1.ConditionTrue, stratv1.ReasonSucceeded, false, false, stratv1.PhaseRunning, kstatus.CurrentStatus, "Ready"},
		{"Live, the engine stopped on purpose: as declared, Halted", stratv1.ModeLive, "", true,
			conds{stratv1.ConditionRedisReady: true, stratv1.ConditionEventLoggerReady: true, stratv1.ConditionEngineReady: true},
			Outcome{Redis: RedisOK, Stopped: true}, metav1.ConditionTrue, stratv1.ReasonStopped, false, false, stratv1.PhaseHalted, kstatus.CurrentStatus, "Ready"},
		{"Live, gated", stratv1.ModeLive, "", true,
			conds{stratv1.ConditionRedisReady: false, stratv1.ConditionEventLoggerReady: false, stratv1.ConditionEngineReady: false},
			Outcome{Redis: RedisGated}, metav1.ConditionFalse, stratv1.ReasonRedisNotReady, true, false, stratv1.PhaseGated, kstatus.InProgressStatus, ""},
		{"Live, only the operator cannot reach Redis: still running, Ready", stratv1.ModeLive, stratv1.RedisLossHalt, true,
			conds{stratv1.ConditionEventLoggerReady: true, stratv1.ConditionEngineReady: true},
			Outcome{Redis: RedisUnseen}, metav1.ConditionTrue, stratv1.ReasonSucceeded, false, false, stratv1.PhaseRunning, kstatus.CurrentStatus, "Ready"},
		{"Live, lost under Halt", stratv1.ModeLive, stratv1.RedisLossHalt, true,
			conds{stratv1.ConditionRedisReady: false, stratv1.ConditionEventLoggerReady: true, stratv1.ConditionEngineReady: false},
			Outcome{Redis: RedisLost}, metav1.ConditionFalse, stratv1.ReasonRedisLost, true, false, stratv1.PhaseHalted, kstatus.InProgressStatus, ""},
		{"Live, lost under Alert", stratv1.ModeLive, stratv1.RedisLossAlert, true,
			conds{stratv1.ConditionRedisReady: false, stratv1.ConditionEventLoggerReady: true, stratv1.ConditionEngineReady: true},
			Outcome{Redis: RedisLost}, metav1.ConditionFalse, stratv1.ReasonRedisLost, true, false, stratv1.PhaseDegraded, kstatus.InProgressStatus, ""},
		{"the logger not yet available", stratv1.ModeLive, "", false,
			conds{stratv1.ConditionRedisReady: true, stratv1.ConditionEventLoggerReady: false},
			Outcome{Redis: RedisOK}, metav1.ConditionFalse, "EventLoggerNotReady", true, false, stratv1.PhasePending, kstatus.InProgressStatus, ""},
		{"a backtest on memory: Ready without Redis", stratv1.ModeBacktest, "", false,
			conds{stratv1.ConditionRedisReady: false, stratv1.ConditionEventLoggerReady: true},
			Outcome{Redis: RedisInMemory}, metav1.ConditionTrue, stratv1.ReasonSucceeded, false, false, stratv1.PhaseRunning, kstatus.CurrentStatus, "Ready"},
		{"a backtest Job that completed", stratv1.ModeBacktest, "", true,
			conds{stratv1.ConditionRedisReady: true, stratv1.ConditionEventLoggerReady: true, stratv1.ConditionEngineReady: true},
			Outcome{Redis: RedisOK, BacktestDone: stratv1.PhaseSucceeded}, metav1.ConditionTrue, stratv1.ReasonSucceeded, false, false, stratv1.PhaseSucceeded, kstatus.CurrentStatus, "Ready"},
		{"stalled: a missing Secret", stratv1.ModeLive, "", false, conds{},
			Outcome{Err: Stall(stratv1.ReasonSecretNotFound, "Secret %q is missing", "redis-auth")}, metav1.ConditionFalse, stratv1.ReasonSecretNotFound, false, true, stratv1.PhaseFailed, kstatus.FailedStatus, stratv1.ReasonSecretNotFound},
		{"an error that is retried", stratv1.ModeLive, "", false, conds{},
			Outcome{Err: errors.New("etcd is slow")}, metav1.ConditionFalse, stratv1.ReasonReconcileError, true, false, stratv1.PhasePending, kstatus.InProgressStatus, stratv1.ReasonReconcileError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := &stratv1.Strategy{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "ns", Generation: 4}}
			s.Spec.Mode, s.Spec.RedisLossPolicy = tc.mode, tc.policy
			if tc.engine {
				s.Spec.Engine = &stratv1.EngineSpec{}
			}
			for typ, ok := range tc.steps {
				reason := "StepDone"
				if !ok {
					reason = map[string]string{stratv1.ConditionEventLoggerReady: "EventLoggerNotReady"}[typ]
					if reason == "" {
						reason = "StepNotDone"
					}
				}
				SetCondition(s, typ, ok, reason, typ+" says so")
			}
			events := Summarize(s, tc.outcome)

			ready := ConditionCopy(s, stratv1.ConditionReady)
			if ready == nil || ready.Status != tc.ready || ready.Reason != tc.readyReason {
				t.Fatalf("Ready %+v, want %s %s", ready, tc.ready, tc.readyReason)
			}
			if got := ConditionCopy(s, stratv1.ConditionReconciling); (got != nil) != tc.reconciling || (got != nil && got.Status != metav1.ConditionTrue) {
				t.Fatalf("Reconciling %+v, want present (and True) %t", got, tc.reconciling)
			}
			if got := ConditionCopy(s, stratv1.ConditionStalled); (got != nil) != tc.stalled || (got != nil && got.Status != metav1.ConditionTrue) {
				t.Fatalf("Stalled %+v, want present (and True) %t", got, tc.stalled)
			}
			if s.Status.Phase != tc.phase || s.Status.ObservedGeneration != 4 {
				t.Fatalf("phase %s, observedGeneration %d; want %s, 4", s.Status.Phase, s.Status.ObservedGeneration, tc.phase)
			}
			if got := kstatusOf(t, s); got != tc.kstatus {
				t.Fatalf("kstatus %s, want %s", got, tc.kstatus)
			}
			gotEvent := ""
			if len(events) > 0 {
				gotEvent = events[0].Reason
			}
			if gotEvent != tc.event {
				t.Fatalf("events %+v, want %q", events, tc.event)
			}
			// A second summary of the same outcome says nothing new.
			if again := Summarize(s, tc.outcome); len(again) != 0 && tc.outcome.Err == nil {
				t.Fatalf("the same outcome again gave events %+v", again)
			}
		})
	}
}

func TestSuspend_KeepsConditionsAndNeverLeavesReadyAbsent(t *testing.T) {
	s := &stratv1.Strategy{ObjectMeta: metav1.ObjectMeta{Generation: 2}}
	if ev := Suspend(s); len(ev) != 1 || ev[0].Reason != stratv1.ReasonSuspended {
		t.Fatalf("events %+v", ev)
	}
	if c := ConditionCopy(s, stratv1.ConditionReady); c == nil || c.Reason != stratv1.ReasonSuspended || s.Status.Phase != stratv1.PhaseSuspended {
		t.Fatalf("Ready %+v, phase %s", c, s.Status.Phase)
	}
	if ev := Suspend(s); len(ev) != 0 {
		t.Fatalf("a second suspend gave %+v", ev)
	}
}

func kstatusOf(t *testing.T, s *stratv1.Strategy) kstatus.Status {
	t.Helper()
	s = s.DeepCopy()
	s.SetGroupVersionKind(stratv1.GroupVersion.WithKind("Strategy"))
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(s)
	if err != nil {
		t.Fatal(err)
	}
	res, err := kstatus.Compute(&unstructured.Unstructured{Object: m})
	if err != nil {
		t.Fatal(err)
	}
	return res.Status
}
