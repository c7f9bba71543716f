package lifecycle

import (
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	stratv1 "github.com/stratops/stratops/api/v1"
)

// WaitForLoggerMessage is EngineReady's message while an engine waits for
// its event logger: pub/sub keeps nothing for a subscriber that is not
// there yet, so what an engine published before its logger listened would
// never be logged.
const WaitForLoggerMessage = "The engine starts once an event logger replica is available, so that everything it publishes is logged"

// Condition is a condition a decision sets: its status, reason and message.
type Condition struct {
	Ready           bool
	Reason, Message string
}

// EngineFacts are what a Live engine's verdict is decided from: the spec,
// the Redis verdict, the logger, and the engine Deployment as it runs.
type EngineFacts struct {
	// Name is the engine Deployment's name, for messages.
	Name       string
	Redis      RedisState
	LossPolicy stratv1.RedisLossPolicy
	// Stopped is spec.engine.stopped; Manual is updateStrategy Manual.
	Stopped, Manual bool
	// LoggerListening: an event logger replica is available.
	LoggerListening bool
	// Revision is the revision the spec asks for; Approved is the
	// stratops.dev/approve-revision annotation's value.
	Revision, Approved string
	// Running is the engine Deployment as the cache holds it, nil when
	// there is none. RunningRevision is the revision its pod template
	// carries, Differs the parts in which it differs from Revision, and
	// Holdable whether the operator owns its pod template (and so can keep
	// it as it is).
	Running         *appsv1.Deployment
	RunningRevision string
	Differs         []string
	Holdable        bool
	// PrevReason is EngineReady's reason before this reconcile.
	PrevReason string
	// Strategy is the Strategy's name, for the approval command.
	Strategy string
}

// EngineVerdict is what to do with a Live engine.
type EngineVerdict struct {
	// Apply: the engine Deployment is applied. False: nothing is made yet.
	Apply bool
	// Replicas is the engine's replica count.
	Replicas int32
	// Hold: the running revision is kept (Manual, not approved): the
	// Deployment is applied as it runs, at Replicas.
	Hold bool
	// Revision is what runs after this reconcile (status.engine.revision).
	Revision string
	// UpdatePending is the UpdatePending condition's message while a
	// revision is held; empty removes the condition.
	UpdatePending string
	// EngineReady is the engine's condition.
	EngineReady Condition
	// Events mark what changed.
	Events []Event
}

// DecideEngine is the Live engine's policy in one function of values:
// gated until Redis passed its probes, started (and resumed after a Halt)
// only once its logger listens, scaled to zero while Redis is lost under
// Halt or while stopped on purpose, a new revision held under Manual until
// approved, and the EngineReady condition with the events of each change.
func DecideEngine(f EngineFacts) EngineVerdict {
	if f.Redis == RedisGated {
		return EngineVerdict{EngineReady: Condition{false, stratv1.ReasonGated, "The engine waits for Redis to pass its probes"}}
	}
	halted := Halted(f.Redis, f.LossPolicy)
	current := int32(0)
	if f.Running != nil {
		current = ptr.Deref(f.Running.Spec.Replicas, 1)
	}
	// Not started yet, or at zero after a Halt: wait for the logger. A
	// running engine is never stopped for this.
	waiting := !halted && !f.Stopped && !f.LoggerListening && current == 0
	if waiting && f.Running == nil {
		return EngineVerdict{EngineReady: Condition{false, stratv1.ReasonWaitingForEventLogger, WaitForLoggerMessage}}
	}
	v := EngineVerdict{Apply: true, Replicas: 1, Revision: f.Revision}
	if halted || f.Stopped || waiting {
		v.Replicas = 0
	}
	if f.Running != nil && f.RunningRevision != f.Revision && f.Manual && f.Approved != f.Revision && f.Holdable {
		v.hold(f)
	}
	if f.Running != nil && current != v.Replicas {
		v.Events = append(v.Events, scaleEvent(f, current, v.Replicas, halted))
	}
	v.EngineReady = engineReady(f, v.Replicas, halted, waiting)
	return v
}

// hold keeps the running revision and says what differs and how to
// approve the new one.
func (v *EngineVerdict) hold(f EngineFacts) {
	v.Hold, v.Revision = true, f.RunningRevision
	what := strings.Join(f.Differs, ", ")
	cmd := fmt.Sprintf("kubectl annotate strat/%s %s=%s --overwrite", f.Strategy, stratv1.AnnotationApproveRevision, f.Revision)
	v.UpdatePending = fmt.Sprintf("Revision %s is held (updateStrategy Manual); the engine runs %s. It differs in %s. Approve it with: %s",
		f.Revision, f.RunningRevision, what, cmd)
	v.Events = append(v.Events, Event{Type: corev1.EventTypeNormal, Reason: stratv1.EventUpdateHeld, Once: "held|" + f.Revision,
		Note: fmt.Sprintf("Revision %s (%s) is held until approved: %s", f.Revision, what, cmd)})
	if f.Approved != "" && f.Approved != f.RunningRevision {
		v.Events = append(v.Events, Event{Type: corev1.EventTypeWarning, Reason: stratv1.EventApprovalStale, Once: "stale|" + f.Approved + "|" + f.Revision,
			Note: fmt.Sprintf("%s=%s approves no revision the spec asks for: the desired revision is %s; approve it with: %s",
				stratv1.AnnotationApproveRevision, f.Approved, f.Revision, cmd)})
	}
}

// scaleEvent says why a running engine's replica count changes.
func scaleEvent(f EngineFacts, from, to int32, halted bool) Event {
	switch {
	case f.Stopped:
		return Event{Type: corev1.EventTypeNormal, Reason: stratv1.EventEngineStopped,
			Note: "spec.engine.stopped: the engine is scaled to 0 (SIGTERM, then its grace period)"}
	case from == 0 && f.PrevReason == stratv1.ReasonStopped:
		return Event{Type: corev1.EventTypeNormal, Reason: stratv1.EventEngineStarted,
			Note: fmt.Sprintf("spec.engine.stopped is false: the engine is scaled to %d", to)}
	case halted:
		return Event{Type: corev1.EventTypeWarning, Reason: stratv1.EventEngineHalted,
			Note: "Redis lost under policy Halt: the engine is scaled to 0"}
	}
	return Event{Type: corev1.EventTypeNormal, Reason: stratv1.EventEngineResumed,
		Note: fmt.Sprintf("Redis is back: the engine is scaled to %d", to)}
}

// engineReady is EngineReady for a Live engine at replicas.
func engineReady(f EngineFacts, replicas int32, halted, waiting bool) Condition {
	d := f.Running
	if d == nil {
		d = &appsv1.Deployment{}
		d.Name = f.Name
	}
	ready, progress := DeploymentAvailable(d, replicas)
	rejected := ReplicaFailure(d)
	switch {
	case rejected != "" && !ready:
		return Condition{false, stratv1.ReasonPodsRejected, fmt.Sprintf("Deployment %s cannot create the engine's pods: %s", d.Name, rejected)}
	case f.Stopped:
		return Condition{true, stratv1.ReasonStopped, "The engine is stopped on purpose (spec.engine.stopped): scaled to 0"}
	case waiting:
		return Condition{false, stratv1.ReasonWaitingForEventLogger, WaitForLoggerMessage}
	case halted:
		return Condition{false, stratv1.ReasonEngineHalted, "Engine scaled to 0: Redis is lost and redisLossPolicy is Halt"}
	case ready:
		return Condition{true, stratv1.ReasonEngineRunning, fmt.Sprintf("Deployment %s has %d/%d replicas available", d.Name, d.Status.AvailableReplicas, replicas)}
	}
	return Condition{false, stratv1.ReasonEngineStarting, progress}
}

// DeploymentAvailable reports whether a Deployment has rolled out its
// current template with want replicas available, and if not, why.
func DeploymentAvailable(d *appsv1.Deployment, want int32) (bool, string) {
	switch {
	case d.Status.ObservedGeneration < d.Generation:
		return false, fmt.Sprintf("Deployment %s: waiting for the deployment controller to observe generation %d", d.Name, d.Generation)
	case d.Status.UpdatedReplicas < want:
		return false, fmt.Sprintf("Deployment %s: %d/%d replicas updated", d.Name, d.Status.UpdatedReplicas, want)
	case d.Status.AvailableReplicas < want:
		return false, fmt.Sprintf("Deployment %s: %d/%d replicas available", d.Name, d.Status.AvailableReplicas, want)
	case d.Status.Replicas > d.Status.UpdatedReplicas:
		return false, fmt.Sprintf("Deployment %s: %d old replicas pending termination", d.Name, d.Status.Replicas-d.Status.UpdatedReplicas)
	}
	return true, ""
}

// ReplicaFailure is the refusal the deployment controller reports when a
// Deployment's pods cannot be created (ReplicaFailure: Pod Security
// admission, a quota), empty when there is none.
func ReplicaFailure(d *appsv1.Deployment) string {
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentReplicaFailure && c.Status == corev1.ConditionTrue {
			return c.Message
		}
	}
	return ""
}

// RemovalStep is what removing a Live engine Deployment takes next.
type RemovalStep string

const (
	// RemovalScaleDown: scale it to 0, so its pod stops gracefully first.
	RemovalScaleDown RemovalStep = "ScaleDown"
	// RemovalAwaitPods: wait for its pods to end.
	RemovalAwaitPods RemovalStep = "AwaitPods"
	// RemovalDelete: its pods ended; delete it (and its budget).
	RemovalDelete RemovalStep = "Delete"
	// RemovalAwaitDeletion: it is being deleted.
	RemovalAwaitDeletion RemovalStep = "AwaitDeletion"
)

// RemovalVerdict is the next step of removing an engine Deployment, with
// EngineReady meanwhile and the event that says it.
type RemovalVerdict struct {
	Step        RemovalStep
	EngineReady Condition
	Event       *Event
}

// DecideRemoval is the next step of removing an engine Deployment the
// spec no longer has (why says what changed): scaled to zero first, so
// that its pod gets SIGTERM and its grace period, then deleted once its
// pods have ended.
func DecideRemoval(d *appsv1.Deployment, why string) RemovalVerdict {
	removing := func(msg string) Condition { return Condition{false, stratv1.ReasonEngineRemoving, msg} }
	terminating := ptr.Deref(d.Status.TerminatingReplicas, 0)
	switch {
	case !d.DeletionTimestamp.IsZero():
		return RemovalVerdict{Step: RemovalAwaitDeletion, EngineReady: removing("The engine is being deleted: " + why)}
	case ptr.Deref(d.Spec.Replicas, 1) != 0:
		return RemovalVerdict{Step: RemovalScaleDown, EngineReady: removing("The engine is being stopped: " + why),
			Event: &Event{Type: corev1.EventTypeWarning, Reason: stratv1.EventEngineRemoving,
				Note: fmt.Sprintf("%s: the engine Deployment %s is scaled to 0 (its pod is stopped with SIGTERM and its grace period), then deleted", why, d.Name)}}
	case d.Status.ObservedGeneration < d.Generation || d.Status.Replicas > 0 || terminating > 0:
		return RemovalVerdict{Step: RemovalAwaitPods,
			EngineReady: removing(fmt.Sprintf("The engine is being stopped (%s): %d pods, %d terminating", why, d.Status.Replicas, terminating))}
	}
	return RemovalVerdict{Step: RemovalDelete, EngineReady: removing("The engine is being deleted: " + why),
		Event: &Event{Type: corev1.EventTypeNormal, Reason: stratv1.EventEngineRemoved,
			Note: fmt.Sprintf("%s: the engine's pods ended and Deployment %s is deleted", why, d.Name)}}
}

// JobOutcome is how a backtest Job ended, or that it runs, with the
// condition that says how it ended (nil while it runs): the one reading of
// a Job's conditions.
func JobOutcome(j *batchv1.Job) (stratv1.BacktestOutcome, *batchv1.JobCondition) {
	for i := range j.Status.Conditions {
		c := &j.Status.Conditions[i]
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			return stratv1.BacktestSucceeded, c
		case batchv1.JobFailed:
			return stratv1.BacktestFailed, c
		}
	}
	return stratv1.BacktestRunning, nil
}
