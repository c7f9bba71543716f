package lifecycle

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	stratv1 "github.com/stratops/stratops/api/v1"
)

// deployment is an engine Deployment at replicas, with available of them
// available and its rollout observed.
func deployment(replicas, available int32) *appsv1.Deployment {
	d := &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Replicas: ptr.To(replicas)}}
	d.Name, d.Generation = "s-engine", 2
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: available, UpdatedReplicas: available, AvailableReplicas: available}
	return d
}

// TestDecideEngine_EveryRowOfTheLiveEnginePolicy: the gate, waiting for
// the logger, Halt and Alert, stopping on purpose, holding a revision
// under Manual, the condition and the events of each change.
func TestDecideEngine_EveryRowOfTheLiveEnginePolicy(t *testing.T) {
	rejected := deployment(1, 0)
	rejected.Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentReplicaFailure, Status: corev1.ConditionTrue, Message: "violates PodSecurity"}}
	base := func(f EngineFacts) EngineFacts {
		f.Name, f.Strategy = "s-engine", "s"
		if f.LossPolicy == "" {
			f.LossPolicy = stratv1.RedisLossHalt
		}
		if f.Redis == "" {
			f.Redis = RedisOK
		}
		if f.Revision == "" {
			f.Revision = "rev2"
		}
		if f.Running != nil && f.RunningRevision == "" {
			f.RunningRevision = f.Revision
		}
		return f
	}
	cases := []struct {
		name     string
		facts    EngineFacts
		apply    bool
		replicas int32
		hold     bool
		reason   string
		ready    bool
		events   []string
	}{
		{"gated: nothing is made", base(EngineFacts{Redis: RedisGated, LoggerListening: true}),
			false, 0, false, stratv1.ReasonGated, false, nil},
		{"a new engine waits for its logger", base(EngineFacts{}),
			false, 0, false, stratv1.ReasonWaitingForEventLogger, false, nil},
		{"a new engine starts once its logger listens", base(EngineFacts{LoggerListening: true}),
			true, 1, false, stratv1.ReasonEngineStarting, false, nil},
		{"a running engine is never stopped for its logger", base(EngineFacts{Running: deployment(1, 1)}),
			true, 1, false, stratv1.ReasonEngineRunning, true, nil},
		{"Redis lost under Halt: scaled to 0", base(EngineFacts{Redis: RedisLost, LoggerListening: true, Running: deployment(1, 1)}),
			true, 0, false, stratv1.ReasonEngineHalted, false, []string{stratv1.EventEngineHalted}},
		{"Redis lost under Alert: keeps running", base(EngineFacts{Redis: RedisLost, LossPolicy: stratv1.RedisLossAlert, LoggerListening: true, Running: deployment(1, 1)}),
			true, 1, false, stratv1.ReasonEngineRunning, true, nil},
		{"Redis failing below the threshold: keeps running", base(EngineFacts{Redis: RedisFailing, Running: deployment(1, 1)}),
			true, 1, false, stratv1.ReasonEngineRunning, true, nil},
		{"halted, Redis back, the logger not yet listening: stays at 0", base(EngineFacts{Running: deployment(0, 0)}),
			true, 0, false, stratv1.ReasonWaitingForEventLogger, false, nil},
		{"halted, Redis back and the logger listening: resumed", base(EngineFacts{LoggerListening: true, Running: deployment(0, 0), PrevReason: stratv1.ReasonEngineHalted}),
			true, 1, false, stratv1.ReasonEngineStarting, false, []string{stratv1.EventEngineResumed}},
		{"stopped on purpose: scaled to 0, Ready", base(EngineFacts{Stopped: true, LoggerListening: true, Running: deployment(1, 1)}),
			true, 0, false, stratv1.ReasonStopped, true, []string{stratv1.EventEngineStopped}},
		{"started again after a stop", base(EngineFacts{LoggerListening: true, Running: deployment(0, 0), PrevReason: stratv1.ReasonStopped}),
			true, 1, false, stratv1.ReasonEngineStarting, false, []string{stratv1.EventEngineStarted}},
		{"Manual: a new revision is held", base(EngineFacts{Manual: true, Holdable: true, LoggerListening: true, Running: deployment(1, 1), RunningRevision: "rev1", Differs: []string{"template"}}),
			true, 1, true, stratv1.ReasonEngineRunning, true, []string{stratv1.EventUpdateHeld}},
		{"Manual: a stale approval is said", base(EngineFacts{Manual: true, Holdable: true, Approved: "rev0", LoggerListening: true, Running: deployment(1, 1), RunningRevision: "rev1"}),
			true, 1, true, stratv1.ReasonEngineRunning, true, []string{stratv1.EventUpdateHeld, stratv1.EventApprovalStale}},
		{"Manual: the approved revision rolls", base(EngineFacts{Manual: true, Holdable: true, Approved: "rev2", LoggerListening: true, Running: deployment(1, 1), RunningRevision: "rev1"}),
			true, 1, false, stratv1.ReasonEngineRunning, true, nil},
		{"Manual: a held engine halts all the same", base(EngineFacts{Manual: true, Holdable: true, Redis: RedisLost, Running: deployment(1, 1), RunningRevision: "rev1"}),
			true, 0, true, stratv1.ReasonEngineHalted, false, []string{stratv1.EventUpdateHeld, stratv1.EventEngineHalted}},
		{"Auto: a new revision rolls", base(EngineFacts{LoggerListening: true, Running: deployment(1, 1), RunningRevision: "rev1"}),
			true, 1, false, stratv1.ReasonEngineRunning, true, nil},
		{"pods refused: the refusal is the reason", base(EngineFacts{LoggerListening: true, Running: rejected}),
			true, 1, false, stratv1.ReasonPodsRejected, false, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := DecideEngine(tc.facts)
			if v.Apply != tc.apply || v.Replicas != tc.replicas || v.Hold != tc.hold {
				t.Fatalf("apply %t replicas %d hold %t; want %t %d %t", v.Apply, v.Replicas, v.Hold, tc.apply, tc.replicas, tc.hold)
			}
			if v.EngineReady.Reason != tc.reason || v.EngineReady.Ready != tc.ready {
				t.Fatalf("EngineReady %+v; want %s ready=%t", v.EngineReady, tc.reason, tc.ready)
			}
			var events []string
			for _, e := range v.Events {
				events = append(events, e.Reason)
			}
			if strings.Join(events, ",") != strings.Join(tc.events, ",") {
				t.Fatalf("events %v, want %v", events, tc.events)
			}
			if v.Hold != (v.UpdatePending != "") {
				t.Fatalf("held %t but UpdatePending %q", v.Hold, v.UpdatePending)
			}
			if v.Hold && v.Revision != tc.facts.RunningRevision || !v.Hold && v.Apply && v.Revision != tc.facts.Revision {
				t.Fatalf("status revision %q (running %q, desired %q, held %t)", v.Revision, tc.facts.RunningRevision, tc.facts.Revision, v.Hold)
			}
		})
	}
}

// TestDecideEngine_AHoldSaysWhatDiffersAndHowToApprove: the condition and
// the event name the revisions, the parts that differ and the command; the
// event is said once per revision.
func TestDecideEngine_AHoldSaysWhatDiffersAndHowToApprove(t *testing.T) {
	v := DecideEngine(EngineFacts{Name: "s-engine", Strategy: "s", Redis: RedisOK, Manual: true, Holdable: true, LoggerListening: true,
		Revision: "rev2", Running: deployment(1, 1), RunningRevision: "rev1", Differs: []string{"catalog", "template"}})
	want := "Revision rev2 is held (updateStrategy Manual); the engine runs rev1. It differs in catalog, template. Approve it with: kubectl annotate strat/s stratops.dev/approve-revision=rev2 --overwrite"
	if v.UpdatePending != want {
		t.Fatalf("UpdatePending %q\nwant %q", v.UpdatePending, want)
	}
	if len(v.Events) != 1 || v.Events[0].Once != "held|rev2" || !strings.Contains(v.Events[0].Note, "(catalog, template)") {
		t.Fatalf("events %+v", v.Events)
	}
	// Not holdable (the operator does not own the template): nothing to hold.
	if v := DecideEngine(EngineFacts{Redis: RedisOK, Manual: true, LoggerListening: true, Revision: "rev2", Running: deployment(1, 1), RunningRevision: "rev1"}); v.Hold {
		t.Fatal("held a template the operator does not own")
	}
}

// TestDecideRemoval_ScaleThenWaitThenDelete: an engine Deployment is
// scaled to zero, its pods awaited, then it is deleted, each step said.
func TestDecideRemoval_ScaleThenWaitThenDelete(t *testing.T) {
	running := deployment(1, 1)
	scaled := deployment(0, 1)
	terminating := deployment(0, 0)
	terminating.Status.TerminatingReplicas = ptr.To[int32](1)
	unobserved := deployment(0, 0)
	unobserved.Generation = 3
	gone := deployment(0, 0)
	deleting := deployment(0, 0)
	deleting.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	cases := []struct {
		name  string
		d     *appsv1.Deployment
		step  RemovalStep
		event string
	}{
		{"running: scale it to 0 first", running, RemovalScaleDown, stratv1.EventEngineRemoving},
		{"scaled, a pod left: wait", scaled, RemovalAwaitPods, ""},
		{"a pod terminating: wait", terminating, RemovalAwaitPods, ""},
		{"the scale not yet observed: wait", unobserved, RemovalAwaitPods, ""},
		{"its pods ended: delete it", gone, RemovalDelete, stratv1.EventEngineRemoved},
		{"being deleted: wait", deleting, RemovalAwaitDeletion, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := DecideRemoval(tc.d, "spec.engine was removed")
			if v.Step != tc.step || v.EngineReady.Reason != stratv1.ReasonEngineRemoving || v.EngineReady.Ready {
				t.Fatalf("step %s, EngineReady %+v; want %s", v.Step, v.EngineReady, tc.step)
			}
			got := ""
			if v.Event != nil {
				got = v.Event.Reason
				if !strings.HasPrefix(v.Event.Note, "spec.engine was removed: ") {
					t.Fatalf("the event does not say why: %q", v.Event.Note)
				}
			}
			if got != tc.event {
				t.Fatalf("event %q, want %q", got, tc.event)
			}
		})
	}
}

func TestJobOutcome_ReadsTheConditionsOnce(t *testing.T) {
	j := &batchv1.Job{}
	if o, c := JobOutcome(j); o != stratv1.BacktestRunning || c != nil {
		t.Fatalf("a Job without conditions: %s %v", o, c)
	}
	j.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionFalse}}
	if o, _ := JobOutcome(j); o != stratv1.BacktestRunning {
		t.Fatalf("a False condition counts for nothing: %s", o)
	}
	j.Status.Conditions = append(j.Status.Conditions, batchv1.JobCondition{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded"})
	if o, c := JobOutcome(j); o != stratv1.BacktestFailed || c.Reason != "BackoffLimitExceeded" {
		t.Fatalf("failed: %s %+v", o, c)
	}
	j.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}
	if o, _ := JobOutcome(j); o != stratv1.BacktestSucceeded {
		t.Fatalf("complete: %s", o)
	}
}
