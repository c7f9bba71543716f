package lifecycle

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	stratv1 "github.com/stratops/stratops/api/v1"
)

// TestDecideRedis_EveryRowOfTheREADME walks the README's behaviour
// sections row by row: the Live gate, losing Redis after rollout under
// Halt and Alert, recovering, and a backtest's buses.
func TestDecideRedis_EveryRowOfTheREADME(t *testing.T) {
	down := &Failure{Probe: "connect", Reason: "Unreachable", Message: "connection refused"}
	lost := &metav1.Condition{Reason: stratv1.ReasonRedisLost, Message: "Redis lost after 3 consecutive failed probe rounds: probe connect failed (Unreachable): connection refused"}
	gated := &metav1.Condition{Reason: stratv1.ReasonRedisNotReady, Message: "Live strategy gated: Redis probe connect failed (Unreachable): connection refused"}
	passed := &metav1.Condition{Status: metav1.ConditionTrue, Reason: stratv1.ReasonSucceeded, Message: "Redis passed every probe"}
	live := func(f RedisFacts) RedisFacts {
		f.Mode, f.Configured, f.HasEngine = stratv1.ModeLive, true, true
		if f.Interval == 0 {
			f.Interval = 30 * time.Second
		}
		if f.LossPolicy == "" {
			f.LossPolicy = stratv1.RedisLossHalt
		}
		return f
	}
	backtest := func(f RedisFacts) RedisFacts {
		f.Mode, f.Configured, f.Interval = stratv1.ModeBacktest, true, 30*time.Second
		return f
	}
	cases := []struct {
		name         string
		facts        RedisFacts
		state        RedisState
		ready        bool
		reason       string
		message      string // a part of it
		event        string // the event's reason, "" for none
		requeueAfter time.Duration
		halts        bool
	}{
		{"a backtest without spec.redis runs on memory", RedisFacts{Mode: stratv1.ModeBacktest},
			RedisInMemory, false, stratv1.ReasonInMemoryFallback, "No spec.redis", "", 0, false},
		{"a backtest whose Redis answers runs on Redis", backtest(RedisFacts{}),
			RedisOK, true, stratv1.ReasonSucceeded, "passed every probe", "", 30 * time.Second, false},
		{"a backtest whose Redis fails before rollout falls back to memory", backtest(RedisFacts{Failed: down, ConsecutiveFailures: 1}),
			RedisInMemory, false, stratv1.ReasonInMemoryFallback, "probe connect failed (Unreachable)", "", 30 * time.Second, false},
		{"a backtest rolled out on memory stays on memory when Redis returns", backtest(RedisFacts{LoggerRolledOut: true, BacktestBus: BusMemory}),
			RedisInMemory, false, stratv1.ReasonInMemoryFallback, "chosen at rollout", "", 30 * time.Second, false},
		{"a backtest rolled out on Redis rides out an outage on Redis", backtest(RedisFacts{LoggerRolledOut: true, BacktestBus: BusRedis, Failed: down, ConsecutiveFailures: 5}),
			RedisFailing, false, stratv1.ReasonRedisNotReady, "keeps its events until Redis returns", "", 2 * time.Second, false},
		{"Live, not rolled out, Redis down: gated, backoff 2s after one failure", live(RedisFacts{Failed: down, ConsecutiveFailures: 1}),
			RedisGated, false, stratv1.ReasonRedisNotReady, "Live strategy gated: Redis probe connect failed", "GateFailed", 2 * time.Second, false},
		{"the gate backs off to the health check interval", live(RedisFacts{Failed: down, ConsecutiveFailures: 9, Prev: gated}),
			RedisGated, false, stratv1.ReasonRedisNotReady, "gated", "", 30 * time.Second, false},
		{"the gate holds from the very first rollout, even a failure away from the threshold", live(RedisFacts{Failed: down, ConsecutiveFailures: 1, Prev: gated}),
			RedisGated, false, stratv1.ReasonRedisNotReady, "gated", "", 2 * time.Second, false},
		{"Live, not rolled out, Redis passes: the gate opens", live(RedisFacts{}),
			RedisOK, true, stratv1.ReasonSucceeded, "passed every probe", "GatePassed", 30 * time.Second, false},
		{"Live, the gate opened, its logger not yet seen: no second GatePassed", live(RedisFacts{Prev: passed}),
			RedisOK, true, stratv1.ReasonSucceeded, "passed every probe", "", 30 * time.Second, false},
		{"Live, rolled out, one failed round is not an outage", live(RedisFacts{LoggerRolledOut: true, Failed: down, ConsecutiveFailures: 1}),
			RedisFailing, true, stratv1.ReasonProbesFailing, "1 of 3 failed rounds; Redis is declared lost after 2 more, in about 3s", "", 2 * time.Second, false},
		{"Live, rolled out, two failed rounds are not an outage", live(RedisFacts{LoggerRolledOut: true, Failed: down, ConsecutiveFailures: 2}),
			RedisFailing, true, stratv1.ReasonProbesFailing, "Redis probe connect failed (Unreachable): connection refused: 2 of 3 failed rounds; Redis is declared lost after 1 more, in about 2s", "", 2 * time.Second, false},
		{"Live, three failed rounds under Halt: lost, the engine halts", live(RedisFacts{LoggerRolledOut: true, Failed: down, ConsecutiveFailures: 3}),
			RedisLost, false, stratv1.ReasonRedisLost, "Redis lost after 3 consecutive failed probe rounds", stratv1.ReasonRedisLost, 2 * time.Second, true},
		{"Live, lost by the operator's probes while the logger still reaches Redis: unseen, nothing halts", live(RedisFacts{LoggerRolledOut: true, Failed: down, ConsecutiveFailures: 3, LoggerReady: 1, LoggerReplicas: 1}),
			RedisUnseen, false, stratv1.ReasonOperatorCannotReachRedis, "the operator cannot reach Redis (Redis probe connect failed (Unreachable): connection refused) but the event logger can (1/1 replicas ready", stratv1.EventOperatorCannotReachRedis, 2 * time.Second, false},
		{"Live, lost, the logger ready again before the probes pass: still lost until they do", live(RedisFacts{LoggerRolledOut: true, Failed: down, ConsecutiveFailures: 9, LoggerReady: 1, LoggerReplicas: 1, Prev: lost}),
			RedisLost, false, stratv1.ReasonRedisLost, lost.Message, "", 2 * time.Second, true},
		{"Live, lost under Alert: the engine keeps running", live(RedisFacts{LoggerRolledOut: true, Failed: down, ConsecutiveFailures: 3, LossPolicy: stratv1.RedisLossAlert}),
			RedisLost, false, stratv1.ReasonRedisLost, "Redis lost", stratv1.ReasonRedisLost, 2 * time.Second, false},
		{"still lost: the same message and no new event", live(RedisFacts{LoggerRolledOut: true, Failed: down, ConsecutiveFailures: 7, Prev: lost}),
			RedisLost, false, stratv1.ReasonRedisLost, lost.Message, "", 2 * time.Second, true},
		{"Redis back after a loss: recovered", live(RedisFacts{LoggerRolledOut: true, Prev: lost}),
			RedisOK, true, stratv1.ReasonSucceeded, "passed every probe", "RedisRecovered", 30 * time.Second, false},
		{"a short interval bounds every requeue", live(RedisFacts{LoggerRolledOut: true, Failed: down, ConsecutiveFailures: 1, Interval: time.Second}),
			RedisFailing, true, stratv1.ReasonProbesFailing, "1 of 3", "", time.Second, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.facts
			v := DecideRedis(f)
			if v.State != tc.state || v.Ready != tc.ready || v.Reason != tc.reason || !strings.Contains(v.Message, tc.message) {
				t.Fatalf("got %s ready=%t %s %q; want %s ready=%t %s containing %q", v.State, v.Ready, v.Reason, v.Message, tc.state, tc.ready, tc.reason, tc.message)
			}
			gotEvent := ""
			if v.Event != nil {
				gotEvent = v.Event.Reason
			}
			if gotEvent != tc.event {
				t.Fatalf("event %q, want %q", gotEvent, tc.event)
			}
			if v.RequeueAfter != tc.requeueAfter {
				t.Fatalf("requeue after %s, want %s", v.RequeueAfter, tc.requeueAfter)
			}
			if Halted(v.State, f.LossPolicy) != tc.halts {
				t.Fatalf("halts the engine: %t, want %t", !tc.halts, tc.halts)
			}
		})
	}
}

func TestDecideRedis_TheLossEventSaysWhatThePolicyDoes(t *testing.T) {
	down := &Failure{Probe: "ping", Reason: "Timeout", Message: "i/o timeout"}
	for policy, want := range map[stratv1.RedisLossPolicy]string{
		stratv1.RedisLossHalt:  "policy Halt: the engine is scaled to zero",
		stratv1.RedisLossAlert: "policy Alert: the engine keeps running",
	} {
		v := DecideRedis(RedisFacts{Mode: stratv1.ModeLive, LossPolicy: policy, HasEngine: true, Configured: true,
			LoggerRolledOut: true, Failed: down, ConsecutiveFailures: 3, Interval: time.Minute})
		if v.Event == nil || !strings.HasSuffix(v.Event.Note, want) || v.Event.Type != "Warning" {
			t.Errorf("%s: event %+v, want a Warning ending %q", policy, v.Event, want)
		}
	}
	v := DecideRedis(RedisFacts{Mode: stratv1.ModeLive, LossPolicy: stratv1.RedisLossHalt, Configured: true,
		LoggerRolledOut: true, Failed: down, ConsecutiveFailures: 3, Interval: time.Minute})
	if !strings.HasSuffix(v.Event.Note, "(no engine to act on)") {
		t.Errorf("without an engine: %q", v.Event.Note)
	}
}

// TestDecideRedis_ALossThresholdIsADuration: with spec.redis.lossThreshold,
// Redis failing for less than it is not lost, however many rounds failed
// (a Sentinel failover); failing for it is.
func TestDecideRedis_ALossThresholdIsADuration(t *testing.T) {
	down := &Failure{Probe: "connect", Reason: "Unreachable", Message: "connection refused"}
	since := time.Date(2026, 5, 12, 14, 0, 0, 0, time.UTC)
	f := RedisFacts{Mode: stratv1.ModeLive, Configured: true, HasEngine: true, LoggerRolledOut: true, LossPolicy: stratv1.RedisLossHalt,
		Interval: time.Second, Failed: down, ConsecutiveFailures: 9, LossThreshold: 20 * time.Second, FailingSince: since, Now: since.Add(12 * time.Second)}
	v := DecideRedis(f)
	if v.State != RedisFailing || !v.Ready || Halted(v.State, f.LossPolicy) || v.RequeueAfter > 2*time.Second {
		t.Fatalf("9 failed rounds in 12 s under a 20 s threshold: %+v; want Failing, not halted", v)
	}
	if v.Reason != stratv1.ReasonProbesFailing || !strings.Contains(v.Message, "declared lost at 2026-05-12T14:00:20Z if it still fails (spec.redis.lossThreshold 20s)") {
		t.Fatalf("the message does not say the threshold: %s", v.Message)
	}
	// The message stays the same while the failure does: no status write
	// per reconcile.
	later := f
	later.Now, later.ConsecutiveFailures = since.Add(17*time.Second), 12
	if DecideRedis(later).Message != v.Message {
		t.Fatalf("the message changed with the clock:\n%s\n%s", v.Message, DecideRedis(later).Message)
	}
	f.Now = since.Add(20 * time.Second)
	v = DecideRedis(f)
	if v.State != RedisLost || !Halted(v.State, f.LossPolicy) || !strings.Contains(v.Message, "failing for spec.redis.lossThreshold 20s") {
		t.Fatalf("failing for the threshold: %+v; want Lost", v)
	}
	// Without a threshold, three rounds.
	f.LossThreshold, f.Now, f.ConsecutiveFailures = 0, since.Add(time.Second), 3
	if v := DecideRedis(f); v.State != RedisLost {
		t.Fatalf("3 rounds without a threshold: %+v; want Lost", v)
	}
}
