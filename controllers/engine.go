package controllers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	policyv1ac "k8s.io/client-go/applyconfigurations/policy/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/children"
	"github.com/stratops/stratops/internal/lifecycle"
)

// reconcileEngine runs the strategy's own workload: a Job in Backtest, a
// Deployment in Live (only after the gate; scaled to zero while Redis is
// lost under policy Halt). An engine starts, or resumes after a Halt, only
// once an event logger replica is available: pub/sub keeps nothing for a
// subscriber that is not there yet, so what an engine published before its
// logger listened would never be logged.
func (r *StrategyReconciler) reconcileEngine(ctx context.Context, sc *scope) (ctrl.Result, error) {
	s := sc.strategy
	// An engine of the other mode (or of none) is removed first.
	if res, removing, err := r.removeEngine(ctx, s); err != nil || removing {
		return res, err
	}
	if s.Spec.Engine == nil {
		meta.RemoveStatusCondition(&s.Status.Conditions, stratv1.ConditionEngineReady)
		s.Status.Engine = nil
		return ctrl.Result{}, nil
	}
	if sc.redisState == lifecycle.RedisGated {
		lifecycle.SetCondition(s, stratv1.ConditionEngineReady, false, stratv1.ReasonGated, "The engine waits for Redis to pass its probes")
		return ctrl.Result{}, nil
	}
	if err := r.ensureEngineServiceAccount(ctx, s); err != nil {
		return ctrl.Result{}, err
	}
	env := children.PodEnv(s, sc.redis != nil)
	if env.Redis == nil {
		// A backtest on the in-process bus forwards its events to the
		// logger, so that its audit trail is complete.
		env.EventLoggerURL = children.EventLoggerURL(s)
	}
	legacyEnv := env
	env.EventLoggerToken = children.EventLoggerTokenRef(s)
	rev, err := children.NewRevision(s, engineOwn{Mode: s.Spec.Mode, Template: s.Spec.Engine.Template, WithRedis: sc.redis != nil},
		sc.catalogJSON, secretValues(sc), sc.tokenUID, r.revisionKey)
	if err != nil {
		return ctrl.Result{}, err
	}
	env.Catalog.ConfigMap = rev.Catalog
	tmpl, err := children.EnginePodTemplate(s, env, rev.Annotations())
	if err != nil {
		return ctrl.Result{}, lifecycle.Stalled(stratv1.ReasonInvalidSpec, "%v", err)
	}
	children.WithEngineIdentity(s, tmpl)
	waitMsg := "The engine starts once an event logger replica is available, so that everything it publishes is logged"
	if s.Spec.Mode == stratv1.ModeBacktest {
		return ctrl.Result{}, r.reconcileBacktest(ctx, sc, tmpl, rev.Name, waitMsg)
	}

	replicas := int32(1)
	halted := lifecycle.Halted(sc.redisState, s.Spec.RedisLossPolicy)
	stopped := s.Spec.Engine.Stopped
	sc.engineStopped = stopped
	if halted || stopped {
		replicas = 0
	}
	var before *appsv1.Deployment
	if cur := (&appsv1.Deployment{}); r.Get(ctx, client.ObjectKey{Namespace: s.Namespace, Name: children.EngineName(s)}, cur) == nil {
		before = cur
	}
	// Not started yet, or at zero after a Halt: wait for the logger. A
	// running engine is never stopped for this.
	waiting := !halted && !stopped && !sc.loggerListening && (before == nil || ptr.Deref(before.Spec.Replicas, 1) == 0)
	if waiting {
		if before == nil {
			s.Status.Engine = &stratv1.WorkloadStatus{Replicas: 0}
			lifecycle.SetCondition(s, stratv1.ConditionEngineReady, false, stratv1.ReasonWaitingForEventLogger, waitMsg)
			return ctrl.Result{}, nil
		}
		replicas = 0
	}
	desired := children.EngineDeployment(s, tmpl, replicas)
	running := rev.Name
	if before != nil {
		running = before.Spec.Template.Annotations[children.AnnotationRevision]
	}
	held := false
	if before != nil && running != rev.Name && s.Spec.Engine.UpdateStrategy == stratv1.UpdateManual {
		if hold, err := r.holdRevision(s, before, rev, replicas); err != nil {
			return ctrl.Result{}, err
		} else if hold != nil {
			desired, held = hold, true
		}
	}
	if !held {
		meta.RemoveStatusCondition(&s.Status.Conditions, stratv1.ConditionUpdatePending)
	}
	if !held && before != nil && running == "" {
		// Running since before the engine had its own identity: it keeps
		// its pod template, exactly as the previous release wrote it, until
		// something else changes it. No restart for the upgrade alone.
		legacyTmpl, err := children.EnginePodTemplate(s, legacyEnv, map[string]string{children.AnnotationConfigHash: sc.configHash})
		if err != nil {
			return ctrl.Result{}, lifecycle.Stalled(stratv1.ReasonInvalidSpec, "%v", err)
		}
		legacy := children.EngineDeployment(s, legacyTmpl, replicas)
		keep, err := r.keepsTemplate(ctx, s, before, legacy)
		if err != nil {
			return ctrl.Result{}, err
		}
		if keep {
			desired, held = legacy, true
			key := client.ObjectKeyFromObject(s).String() + "|legacy-identity"
			if _, seen := r.consentWarnings.LoadOrStore(key, true); !seen {
				r.event(s, corev1.EventTypeWarning, "EngineIdentityPending", "Update",
					"The engine keeps the pod template it ran with before the upgrade, so it is not restarted: until its next rollout it runs as ServiceAccount %q, not its own %q, and without the event logger's token",
					cmp.Or(before.Spec.Template.Spec.ServiceAccountName, "default"), children.EngineName(s))
			}
		}
	}
	// Say what a change does to a running engine before doing it: a dry
	// run of the apply tells whether the pod template really changes (an
	// upgrade that only moves field ownership does not).
	restartWarning := func(*appsv1ac.DeploymentApplyConfiguration) error {
		if before == nil || ptr.Deref(before.Spec.Replicas, 1) == 0 {
			return nil
		}
		dry, err := r.Clientset.AppsV1().Deployments(s.Namespace).Apply(ctx, desired,
			metav1.ApplyOptions{FieldManager: fieldManager, Force: true, DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			return refusedTemplate("Deployment", fmt.Errorf("dry run of the engine's apply: %w", err))
		}
		if !equality.Semantic.DeepEqual(dry.Spec.Template, before.Spec.Template) {
			r.event(s, corev1.EventTypeWarning, "EngineRestarted", "Update",
				"The engine's pod template changed (spec, catalog or a referenced Secret): its pod is replaced now (Recreate: the old one stops before the new one starts)")
		}
		return nil
	}
	res, err := ensure(ctx, r, s, children.EngineName(s), &appsv1.Deployment{}, desired, appsv1ac.ExtractDeployment, restartWarning)
	if err != nil {
		return ctrl.Result{}, refusedTemplate("Deployment", err)
	}
	dep := res.current
	if _, err := ensure(ctx, r, s, children.EngineName(s), &policyv1.PodDisruptionBudget{},
		children.EnginePodDisruptionBudget(s), policyv1ac.ExtractPodDisruptionBudget, nil); err != nil {
		return ctrl.Result{}, err
	}
	if before != nil && ptr.Deref(before.Spec.Replicas, 1) != replicas {
		switch {
		case stopped:
			r.event(s, corev1.EventTypeNormal, "EngineStopped", "Scale", "spec.engine.stopped: the engine is scaled to 0 (SIGTERM, then its grace period)")
		case ptr.Deref(before.Spec.Replicas, 1) == 0 && conditionReason(s, stratv1.ConditionEngineReady) == stratv1.ReasonStopped:
			r.event(s, corev1.EventTypeNormal, "EngineStarted", "Scale", "spec.engine.stopped is false: the engine is scaled to %d", replicas)
		case halted:
			r.event(s, corev1.EventTypeWarning, "EngineHalted", "Scale", "Redis lost under policy Halt: the engine is scaled to 0")
		default:
			r.event(s, corev1.EventTypeNormal, "EngineResumed", "Scale", "Redis is back: the engine is scaled to %d", replicas)
		}
	}
	s.Status.Engine = &stratv1.WorkloadStatus{Replicas: replicas, ReadyReplicas: dep.Status.AvailableReplicas, UpdateRevision: rev.Name, Revision: rev.Name}
	if held {
		s.Status.Engine.Revision = running
	}
	rejected := replicaFailure(dep)
	switch ready, msg := deploymentAvailable(dep, replicas); {
	case rejected != "" && !ready:
		lifecycle.SetCondition(s, stratv1.ConditionEngineReady, false, stratv1.ReasonPodsRejected,
			fmt.Sprintf("Deployment %s cannot create the engine's pods: %s", dep.Name, rejected))
	case stopped:
		lifecycle.SetCondition(s, stratv1.ConditionEngineReady, true, stratv1.ReasonStopped, "The engine is stopped on purpose (spec.engine.stopped): scaled to 0")
	case waiting:
		lifecycle.SetCondition(s, stratv1.ConditionEngineReady, false, stratv1.ReasonWaitingForEventLogger, waitMsg)
	case halted:
		lifecycle.SetCondition(s, stratv1.ConditionEngineReady, false, stratv1.ReasonEngineHalted, "Engine scaled to 0: Redis is lost and redisLossPolicy is Halt")
	case ready:
		lifecycle.SetCondition(s, stratv1.ConditionEngineReady, true, stratv1.ReasonEngineRunning, fmt.Sprintf("Deployment %s has %d/%d replicas available", dep.Name, dep.Status.AvailableReplicas, replicas))
	default:
		lifecycle.SetCondition(s, stratv1.ConditionEngineReady, false, stratv1.ReasonEngineStarting, msg)
	}
	return ctrl.Result{}, nil
}

// holdRevision holds a new revision of a running Live engine under
// updateStrategy Manual: nil when it is approved (the annotation names
// it), else the Deployment as it runs, its replicas as the Redis policy
// wants them. UpdatePending says what differs and how to approve it.
func (r *StrategyReconciler) holdRevision(s *stratv1.Strategy, before *appsv1.Deployment, rev children.Revision, replicas int32) (*appsv1ac.DeploymentApplyConfiguration, error) {
	approved := s.Annotations[stratv1.AnnotationApproveRevision]
	if approved == rev.Name {
		return nil, nil
	}
	owned, err := appsv1ac.ExtractDeployment(before, fieldManager)
	if err != nil {
		return nil, fmt.Errorf("reading what the operator owns of Deployment %s: %w", before.Name, err)
	}
	if owned.Spec == nil || owned.Spec.Template == nil {
		// Nothing of the template is the operator's (never applied):
		// nothing to hold.
		return nil, nil
	}
	owned.WithSpec(owned.Spec.WithReplicas(replicas))
	running := before.Spec.Template.Annotations[children.AnnotationRevision]
	differs := children.Differences(children.ParseParts(before.Spec.Template.Annotations[children.AnnotationRevisionParts]), rev.Parts)
	what := strings.Join(differs, ", ")
	if running == "" {
		running, what = "(from before revisions)", "the whole pod template, written by the release before revisions"
	}
	cmd := fmt.Sprintf("kubectl annotate strat/%s %s=%s --overwrite", s.Name, stratv1.AnnotationApproveRevision, rev.Name)
	lifecycle.SetCondition(s, stratv1.ConditionUpdatePending, true, stratv1.ReasonAwaitingApproval,
		fmt.Sprintf("Revision %s is held (updateStrategy Manual); the engine runs %s. It differs in %s. Approve it with: %s", rev.Name, running, what, cmd))
	key := client.ObjectKeyFromObject(s).String() + "|held|" + rev.Name
	if _, seen := r.consentWarnings.LoadOrStore(key, true); !seen {
		r.event(s, corev1.EventTypeNormal, "UpdateHeld", "Update", "Revision %s (%s) is held until approved: %s", rev.Name, what, cmd)
	}
	if approved != "" && approved != running {
		key := client.ObjectKeyFromObject(s).String() + "|stale|" + approved + "|" + rev.Name
		if _, seen := r.consentWarnings.LoadOrStore(key, true); !seen {
			r.event(s, corev1.EventTypeWarning, "ApprovalStale", "Update",
				"%s=%s approves no revision the spec asks for: the desired revision is %s; approve it with: %s",
				stratv1.AnnotationApproveRevision, approved, rev.Name, cmd)
		}
	}
	return owned, nil
}

// removeEngine removes an engine the spec no longer has: the Live
// Deployment when spec.engine is gone or the mode is Backtest, the
// backtest Job when spec.engine is gone or the mode is Live. A Deployment
// is scaled to zero first and deleted once its pods have ended (within
// their grace period: SIGTERM, then the pod's terminationGracePeriod); a
// Job is deleted, which stops its pod the same way. Removal is said in a
// Warning event before it starts. Only what the Strategy owns is deleted,
// checked on the object and as a precondition of the delete. removing is
// true while a removal is under way.
func (r *StrategyReconciler) removeEngine(ctx context.Context, s *stratv1.Strategy) (ctrl.Result, bool, error) {
	key := client.ObjectKey{Namespace: s.Namespace, Name: children.EngineName(s)}
	why := "spec.engine was removed"
	if s.Spec.Engine != nil {
		why = "spec.mode is " + string(s.Spec.Mode)
	}
	if s.Spec.Engine == nil || s.Spec.Mode == stratv1.ModeBacktest {
		d := &appsv1.Deployment{}
		err := r.Get(ctx, key, d)
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return ctrl.Result{}, false, err
		case !metav1.IsControlledBy(d, s):
			// Not ours: never touched.
		default:
			return r.removeDeployment(ctx, s, d, why)
		}
	}
	if s.Spec.Engine == nil || s.Spec.Mode == stratv1.ModeLive {
		jobs, err := r.engineJobs(ctx, s)
		if err != nil {
			return ctrl.Result{}, false, err
		}
		for i := range jobs {
			j := &jobs[i]
			if !j.DeletionTimestamp.IsZero() {
				continue
			}
			r.event(s, corev1.EventTypeWarning, "EngineRemoved", "Delete",
				"%s: the backtest Job %s is deleted (its pod is stopped with SIGTERM and its grace period)", why, j.Name)
			if err := r.Delete(ctx, j, client.PropagationPolicy(metav1.DeletePropagationBackground),
				client.Preconditions{UID: &j.UID}); client.IgnoreNotFound(err) != nil {
				return ctrl.Result{}, false, fmt.Errorf("deleting Job %s: %w", j.Name, err)
			}
		}
		if len(jobs) > 0 {
			// What ran stays in the history; what was running, stopped.
			s.Status.Backtests = backtestHistory(s, nil)
		}
	}
	return ctrl.Result{}, false, nil
}

// removeDeployment scales the engine Deployment to zero, waits for its
// pods to end, then deletes it.
func (r *StrategyReconciler) removeDeployment(ctx context.Context, s *stratv1.Strategy, d *appsv1.Deployment, why string) (ctrl.Result, bool, error) {
	if !d.DeletionTimestamp.IsZero() {
		return ctrl.Result{RequeueAfter: time.Second}, true, nil
	}
	s.Status.Engine = &stratv1.WorkloadStatus{Replicas: 0, ReadyReplicas: d.Status.AvailableReplicas}
	if ptr.Deref(d.Spec.Replicas, 1) != 0 {
		r.event(s, corev1.EventTypeWarning, "EngineRemoving", "Scale",
			"%s: the engine Deployment %s is scaled to 0 (its pod is stopped with SIGTERM and its grace period), then deleted", why, d.Name)
		patch := client.MergeFromWithOptions(d.DeepCopy(), client.MergeFromWithOptimisticLock{})
		d.Spec.Replicas = ptr.To[int32](0)
		if err := r.Patch(ctx, d, patch, client.FieldOwner(fieldManager)); err != nil {
			return ctrl.Result{}, false, fmt.Errorf("scaling Deployment %s to 0: %w", d.Name, err)
		}
		lifecycle.SetCondition(s, stratv1.ConditionEngineReady, false, stratv1.ReasonEngineRemoving, "The engine is being stopped: "+why)
		return ctrl.Result{RequeueAfter: time.Second}, true, nil
	}
	if d.Status.ObservedGeneration < d.Generation || d.Status.Replicas > 0 || ptr.Deref(d.Status.TerminatingReplicas, 0) > 0 {
		lifecycle.SetCondition(s, stratv1.ConditionEngineReady, false, stratv1.ReasonEngineRemoving,
			fmt.Sprintf("The engine is being stopped (%s): %d pods, %d terminating", why, d.Status.Replicas, ptr.Deref(d.Status.TerminatingReplicas, 0)))
		return ctrl.Result{RequeueAfter: time.Second}, true, nil
	}
	pdb := &policyv1.PodDisruptionBudget{}
	if err := r.Get(ctx, client.ObjectKeyFromObject(d), pdb); err == nil && metav1.IsControlledBy(pdb, s) {
		if err := r.Delete(ctx, pdb, client.Preconditions{UID: &pdb.UID}); client.IgnoreNotFound(err) != nil {
			return ctrl.Result{}, false, fmt.Errorf("deleting PodDisruptionBudget %s: %w", pdb.Name, err)
		}
	} else if client.IgnoreNotFound(err) != nil {
		return ctrl.Result{}, false, err
	}
	if err := r.Delete(ctx, d, client.Preconditions{UID: &d.UID}); client.IgnoreNotFound(err) != nil {
		return ctrl.Result{}, false, fmt.Errorf("deleting Deployment %s: %w", d.Name, err)
	}
	r.event(s, corev1.EventTypeNormal, "EngineRemoved", "Delete", "%s: the engine's pods ended and Deployment %s is deleted", why, d.Name)
	return ctrl.Result{RequeueAfter: time.Second}, true, nil
}

// conditionReason is the reason of a condition of s, empty when absent.
func conditionReason(s *stratv1.Strategy, t string) string {
	if c := meta.FindStatusCondition(s.Status.Conditions, t); c != nil {
		return c.Reason
	}
	return ""
}

// keepsTemplate reports whether applying desired leaves the running
// Deployment's pod template as it is: a dry run of the apply, which the
// API server defaults and merges as it would the real one. The answer is
// remembered for the Deployment's resourceVersion and desired.
func (r *StrategyReconciler) keepsTemplate(ctx context.Context, s *stratv1.Strategy, before *appsv1.Deployment, desired *appsv1ac.DeploymentApplyConfiguration) (bool, error) {
	sum, err := digest(desired)
	if err != nil {
		return false, err
	}
	key := client.ObjectKeyFromObject(s).String() + "|keeps-template"
	mark := shapeMark{before.ResourceVersion, sum}
	if v, ok := r.inShape.Load(key); ok && v.(keptMark).shapeMark == mark {
		return v.(keptMark).keeps, nil
	}
	dry, err := r.Clientset.AppsV1().Deployments(s.Namespace).Apply(ctx, desired,
		metav1.ApplyOptions{FieldManager: fieldManager, Force: true, DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		return false, fmt.Errorf("dry run of the engine's apply: %w", err)
	}
	keeps := equality.Semantic.DeepEqual(dry.Spec.Template, before.Spec.Template)
	r.inShape.Store(key, keptMark{mark, keeps})
	return keeps, nil
}

type keptMark struct {
	shapeMark
	keeps bool
}

// ensureEngineServiceAccount provisions the engine's own ServiceAccount.
// One of that name that someone else made (a team that named its engine's
// account so before the operator did) is used as it is.
func (r *StrategyReconciler) ensureEngineServiceAccount(ctx context.Context, s *stratv1.Strategy) error {
	_, err := ensure(ctx, r, s, children.EngineName(s), &corev1.ServiceAccount{},
		children.EngineServiceAccount(s), corev1ac.ExtractServiceAccount, nil)
	if st, ok := lifecycle.AsStalled(err); ok && st.Reason == stratv1.ReasonNameConflict {
		return nil
	}
	return err
}

// reconcileBacktest runs one Job per revision of a Backtest's engine: a
// spec change makes a new revision, which runs a new Job; the Job of an
// older revision still running is stopped (deleted: its pod gets SIGTERM
// and its grace period), so that two backtests never write the same keys.
// status.backtests keeps the last five runs; the phase is the newest's. A
// Job's template is immutable: an unchanged revision is never rerun.
func (r *StrategyReconciler) reconcileBacktest(ctx context.Context, sc *scope, tmpl *corev1ac.PodTemplateSpecApplyConfiguration, revision, waitMsg string) error {
	s := sc.strategy
	jobs, err := r.engineJobs(ctx, s)
	if err != nil {
		return err
	}
	job := currentBacktest(s, jobs, revision)
	if job == nil {
		name := children.BacktestJobName(s, revision)
		other := &batchv1.Job{}
		if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: s.Namespace, Name: name}, other); err == nil && !metav1.IsControlledBy(other, s) {
			return lifecycle.Stalled(stratv1.ReasonNameConflict, "Job %q exists and is not owned by this Strategy; rename or delete it", name)
		}
		if !sc.loggerListening {
			s.Status.Engine = &stratv1.WorkloadStatus{Replicas: 0, UpdateRevision: revision}
			s.Status.Backtests = backtestHistory(s, jobs)
			lifecycle.SetCondition(s, stratv1.ConditionEngineReady, false, stratv1.ReasonWaitingForEventLogger, waitMsg)
			return nil
		}
		for i := range jobs {
			j := &jobs[i]
			if jobOutcome(j) != stratv1.BacktestRunning || !j.DeletionTimestamp.IsZero() {
				continue
			}
			r.event(s, corev1.EventTypeWarning, "BacktestStopped", "Delete",
				"Revision %s replaces the running backtest Job %s: it is stopped (SIGTERM and its grace period)", revision, j.Name)
			if err := r.Delete(ctx, j, client.PropagationPolicy(metav1.DeletePropagationBackground),
				client.Preconditions{UID: &j.UID}); client.IgnoreNotFound(err) != nil {
				return fmt.Errorf("stopping Job %s: %w", j.Name, err)
			}
		}
		res, err := ensure(ctx, r, s, name, &batchv1.Job{}, children.BacktestJob(s, name, tmpl), nil, nil)
		if err != nil {
			return refusedTemplate("Job", err)
		}
		job = res.current
		job.Spec.Template.Annotations = map[string]string{children.AnnotationRevision: revision}
		job.CreationTimestamp = metav1.Now()
		jobs = append(jobs, *job)
	}
	s.Status.Backtests = backtestHistory(s, jobs)
	if err := r.pruneBacktests(ctx, s, jobs); err != nil {
		return err
	}
	s.Status.Engine = &stratv1.WorkloadStatus{Replicas: 1, ReadyReplicas: job.Status.Active,
		Revision: job.Spec.Template.Annotations[children.AnnotationRevision], UpdateRevision: revision}
	for _, c := range job.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			sc.backtestDone = stratv1.PhaseSucceeded
			lifecycle.SetCondition(s, stratv1.ConditionEngineReady, true, stratv1.ReasonBacktestSucceeded, "Backtest Job "+job.Name+" completed")
			return nil
		case batchv1.JobFailed:
			sc.backtestDone = stratv1.PhaseFailed
			return lifecycle.Stalled(stratv1.ReasonBacktestFailed, "Backtest Job %s failed: %s: %s", job.Name, c.Reason, c.Message)
		}
	}
	if job.UID != "" && job.Status.Active == 0 && ptr.Deref(job.Status.Ready, 0) == 0 && job.Status.Succeeded == 0 && job.Status.Failed == 0 {
		if msg, err := r.jobPodsRejected(ctx, job); err != nil {
			return err
		} else if msg != "" {
			lifecycle.SetCondition(s, stratv1.ConditionEngineReady, false, stratv1.ReasonPodsRejected,
				"Job "+job.Name+" cannot create the backtest's pod: "+msg)
			return nil
		}
	}
	lifecycle.SetCondition(s, stratv1.ConditionEngineReady, true, stratv1.ReasonEngineRunning, "Backtest Job "+job.Name+" is running")
	return nil
}

// engineJobs are the backtest Jobs the Strategy owns (from the cache).
func (r *StrategyReconciler) engineJobs(ctx context.Context, s *stratv1.Strategy) ([]batchv1.Job, error) {
	var list batchv1.JobList
	if err := r.List(ctx, &list, client.InNamespace(s.Namespace), client.MatchingLabels{
		children.LabelInstance: s.Name, children.LabelComponent: children.ComponentEngine, children.LabelManagedBy: children.ManagerName,
	}); err != nil {
		return nil, err
	}
	var out []batchv1.Job
	for _, j := range list.Items {
		if metav1.IsControlledBy(&j, s) {
			out = append(out, j)
		}
	}
	return out, nil
}

// currentBacktest is the Job of revision: named for it, or, for a Strategy
// upgraded from before revisions, the Job it ran then (<name>-engine),
// adopted as the current revision's run while the spec is what it was:
// no backtest reruns because the operator was upgraded.
func currentBacktest(s *stratv1.Strategy, jobs []batchv1.Job, revision string) *batchv1.Job {
	name := children.BacktestJobName(s, revision)
	for i := range jobs {
		if jobs[i].Name == name {
			return &jobs[i]
		}
	}
	for _, run := range s.Status.Backtests {
		if run.Revision == revision {
			for i := range jobs {
				if jobs[i].Name == run.Job {
					return &jobs[i]
				}
			}
		}
	}
	if len(s.Status.Backtests) == 0 && s.Status.ObservedGeneration == s.Generation {
		for i := range jobs {
			if jobs[i].Name == children.EngineName(s) && jobs[i].Spec.Template.Annotations[children.AnnotationRevision] == "" {
				return &jobs[i]
			}
		}
	}
	return nil
}

// jobOutcome is how a Job ended, or that it runs.
func jobOutcome(j *batchv1.Job) stratv1.BacktestOutcome {
	for _, c := range j.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			return stratv1.BacktestSucceeded
		case batchv1.JobFailed:
			return stratv1.BacktestFailed
		}
	}
	return stratv1.BacktestRunning
}

// backtestHistory is status.backtests: the Jobs there are, and the runs
// the history had whose Job is gone (stopped ones among them), newest
// first, five at most.
func backtestHistory(s *stratv1.Strategy, jobs []batchv1.Job) []stratv1.BacktestRun {
	prev := map[string]stratv1.BacktestRun{}
	for _, run := range s.Status.Backtests {
		prev[run.Job] = run
	}
	var runs []stratv1.BacktestRun
	seen := map[string]bool{}
	for i := range jobs {
		j := &jobs[i]
		seen[j.Name] = true
		run := stratv1.BacktestRun{Job: j.Name, Revision: j.Spec.Template.Annotations[children.AnnotationRevision],
			StartTime: ptr.To(j.CreationTimestamp), Outcome: jobOutcome(j)}
		if p, ok := prev[j.Name]; ok {
			if run.Revision == "" {
				run.Revision = p.Revision
			}
			if p.StartTime != nil {
				run.StartTime = p.StartTime
			}
		}
		switch {
		case !j.DeletionTimestamp.IsZero() && run.Outcome == stratv1.BacktestRunning:
			run.Outcome, run.CompletionTime = stratv1.BacktestStopped, j.DeletionTimestamp
		case j.Status.CompletionTime != nil:
			run.CompletionTime = j.Status.CompletionTime
		case run.Outcome == stratv1.BacktestFailed:
			for _, c := range j.Status.Conditions {
				if c.Type == batchv1.JobFailed {
					run.CompletionTime = ptr.To(c.LastTransitionTime)
				}
			}
		}
		runs = append(runs, run)
	}
	for _, run := range s.Status.Backtests {
		if seen[run.Job] {
			continue
		}
		if run.Outcome == stratv1.BacktestRunning {
			run.Outcome, run.CompletionTime = stratv1.BacktestStopped, ptr.To(metav1.Now())
		}
		runs = append(runs, run)
	}
	sort.SliceStable(runs, func(a, b int) bool {
		ta, tb := runs[a].StartTime, runs[b].StartTime
		if ta == nil || tb == nil {
			return tb == nil && ta != nil
		}
		return ta.After(tb.Time)
	})
	if len(runs) > 5 {
		runs = runs[:5]
	}
	return runs
}

// pruneBacktests deletes finished Jobs beyond the five runs status keeps.
func (r *StrategyReconciler) pruneBacktests(ctx context.Context, s *stratv1.Strategy, jobs []batchv1.Job) error {
	kept := map[string]bool{}
	for _, run := range s.Status.Backtests {
		kept[run.Job] = true
	}
	for i := range jobs {
		j := &jobs[i]
		if kept[j.Name] || j.UID == "" || !j.DeletionTimestamp.IsZero() || jobOutcome(j) == stratv1.BacktestRunning {
			continue
		}
		if err := r.Delete(ctx, j, client.PropagationPolicy(metav1.DeletePropagationBackground),
			client.Preconditions{UID: &j.UID}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("deleting Job %s: %w", j.Name, err)
		}
	}
	return nil
}

// refusedTemplate turns the API server's refusal of the engine's workload
// (422: what the template makes is invalid) into a stall that carries the
// server's message: retrying cannot help, a change of the template can.
func refusedTemplate(kind string, err error) error {
	var se apierrors.APIStatus
	if !errors.As(err, &se) {
		return err
	}
	st := se.Status()
	// 422 is a template that makes an invalid object; a server-side apply
	// whose list holds one key twice (a volume named like ours) fails
	// before validation, as a 500 that says so.
	typedPatch := st.Code == 500 && strings.Contains(st.Message, "failed to create typed patch object")
	if !apierrors.IsInvalid(err) && !typedPatch {
		return err
	}
	msg := st.Message
	return lifecycle.Stalled(stratv1.ReasonInvalidEngineTemplate,
		"spec.engine.template: the API server refused the engine's %s: %s", kind, msg)
}

// replicaFailure is the refusal the deployment controller reports when
// the engine's pods cannot be created (ReplicaFailure: Pod Security
// admission, a quota), empty when there is none.
func replicaFailure(d *appsv1.Deployment) string {
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentReplicaFailure && c.Status == corev1.ConditionTrue {
			return c.Message
		}
	}
	return ""
}

// jobPodsRejected is the latest refusal the job controller recorded for
// the Job's pod (a FailedCreate event), empty when there is none.
func (r *StrategyReconciler) jobPodsRejected(ctx context.Context, job *batchv1.Job) (string, error) {
	var list corev1.EventList
	if err := r.APIReader.List(ctx, &list, client.InNamespace(job.Namespace), client.MatchingFields{
		"involvedObject.kind": "Job", "involvedObject.name": job.Name, "reason": "FailedCreate",
	}); err != nil {
		return "", fmt.Errorf("reading the events of Job %s: %w", job.Name, err)
	}
	var latest *corev1.Event
	for i := range list.Items {
		e := &list.Items[i]
		if e.InvolvedObject.UID != job.UID {
			continue
		}
		if latest == nil || eventTime(e).After(eventTime(latest)) {
			latest = e
		}
	}
	if latest == nil {
		return "", nil
	}
	return latest.Message, nil
}

func eventTime(e *corev1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}
