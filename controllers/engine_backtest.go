package controllers

import (
	"context"
	"fmt"
	"sort"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/children"
	"github.com/stratops/stratops/internal/lifecycle"
)

// backtestRunsKept is how many runs status.backtests keeps; finished Jobs
// beyond them are deleted.
const backtestRunsKept = 5

// reconcileBacktest runs one Job per revision of a Backtest's engine: a
// spec change makes a new revision, which runs a new Job; the Job of an
// older revision still running is stopped (deleted: its pod gets SIGTERM
// and its grace period), so that two backtests never write the same keys.
// status.backtests keeps the last runs; the phase is the newest's. A
// Job's template is immutable: an unchanged revision is never rerun.
func (r *StrategyReconciler) reconcileBacktest(ctx context.Context, sc *scope, tmpl *corev1ac.PodTemplateSpecApplyConfiguration, revision string) error {
	s := sc.strategy
	jobs, err := r.engineJobs(ctx, s)
	if err != nil {
		return err
	}
	job := jobNamed(jobs, children.BacktestJobName(s, revision))
	if job == nil {
		if !sc.loggerListening {
			s.Status.Engine = &stratv1.WorkloadStatus{Replicas: 0, UpdateRevision: revision}
			s.Status.Backtests = backtestHistory(s, jobs)
			lifecycle.SetCondition(s, stratv1.ConditionEngineReady, false, stratv1.ReasonWaitingForEventLogger, lifecycle.WaitForLoggerMessage)
			return nil
		}
		if job, err = r.startBacktest(ctx, s, jobs, tmpl, revision); err != nil {
			return err
		}
		jobs = append(jobs, *job)
	}
	s.Status.Backtests = backtestHistory(s, jobs)
	if err := r.pruneBacktests(ctx, s, jobs); err != nil {
		return err
	}
	s.Status.Engine = &stratv1.WorkloadStatus{Replicas: 1, ReadyReplicas: job.Status.Active,
		Revision: job.Spec.Template.Annotations[children.AnnotationRevision], UpdateRevision: revision}
	return r.backtestReady(ctx, sc, job)
}

// startBacktest stops the backtests still running and creates the Job of
// revision. The Job returned stands for the one just made, until the
// cache holds it.
func (r *StrategyReconciler) startBacktest(ctx context.Context, s *stratv1.Strategy, jobs []batchv1.Job, tmpl *corev1ac.PodTemplateSpecApplyConfiguration, revision string) (*batchv1.Job, error) {
	name := children.BacktestJobName(s, revision)
	for i := range jobs {
		j := &jobs[i]
		if outcome, _ := lifecycle.JobOutcome(j); outcome != stratv1.BacktestRunning || !j.DeletionTimestamp.IsZero() {
			continue
		}
		r.event(s, corev1.EventTypeWarning, stratv1.EventBacktestStopped, "Delete",
			"Revision %s replaces the running backtest Job %s: it is stopped (SIGTERM and its grace period)", revision, j.Name)
		if err := r.deleteOwned(ctx, s, j); err != nil {
			return nil, err
		}
	}
	res, err := ensure(ctx, r, s, name, &batchv1.Job{}, children.BacktestJob(s, name, tmpl), nil, nil)
	if err != nil {
		return nil, refusedTemplate("Job", err)
	}
	job := res.current.DeepCopy() // the cache's: a copy to change
	job.Spec.Template.Annotations = map[string]string{children.AnnotationRevision: revision}
	job.CreationTimestamp = metav1.Now()
	return job, nil
}

// backtestReady sets EngineReady from the Job: succeeded, failed (a
// stall: a rerun needs a new revision), refused its pod, or running.
func (r *StrategyReconciler) backtestReady(ctx context.Context, sc *scope, job *batchv1.Job) error {
	s := sc.strategy
	switch outcome, c := lifecycle.JobOutcome(job); outcome {
	case stratv1.BacktestSucceeded:
		sc.backtestDone = stratv1.PhaseSucceeded
		lifecycle.SetCondition(s, stratv1.ConditionEngineReady, true, stratv1.ReasonBacktestSucceeded, "Backtest Job "+job.Name+" completed")
		return nil
	case stratv1.BacktestFailed:
		sc.backtestDone = stratv1.PhaseFailed
		return lifecycle.Stall(stratv1.ReasonBacktestFailed, "Backtest Job %s failed: %s: %s", job.Name, c.Reason, c.Message)
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

// engineJobs are the backtest Jobs the Strategy controls (from the
// cache, by ownedBy).
func (r *StrategyReconciler) engineJobs(ctx context.Context, s *stratv1.Strategy) ([]batchv1.Job, error) {
	var list batchv1.JobList
	if err := r.List(ctx, &list, client.InNamespace(s.Namespace), ownedBy(s),
		client.MatchingLabels{children.LabelComponent: children.ComponentEngine}); err != nil {
		return nil, err
	}
	return list.Items, nil
}

func jobNamed(jobs []batchv1.Job, name string) *batchv1.Job {
	for i := range jobs {
		if jobs[i].Name == name {
			return &jobs[i]
		}
	}
	return nil
}

// backtestHistory is status.backtests: the Jobs there are, and the runs
// the history had whose Job is gone (stopped ones among them), newest
// first, backtestRunsKept at most.
func backtestHistory(s *stratv1.Strategy, jobs []batchv1.Job) []stratv1.BacktestRun {
	prev := map[string]stratv1.BacktestRun{}
	for _, run := range s.Status.Backtests {
		prev[run.Job] = run
	}
	var runs []stratv1.BacktestRun
	seen := map[string]bool{}
	for i := range jobs {
		seen[jobs[i].Name] = true
		runs = append(runs, backtestRun(&jobs[i], prev[jobs[i].Name]))
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
	return runs[:min(len(runs), backtestRunsKept)]
}

// backtestRun is a Job's run, as status.backtests shows it; prev is the
// run as status showed it before (its start time stays).
func backtestRun(j *batchv1.Job, prev stratv1.BacktestRun) stratv1.BacktestRun {
	outcome, finished := lifecycle.JobOutcome(j)
	run := stratv1.BacktestRun{Job: j.Name, Revision: j.Spec.Template.Annotations[children.AnnotationRevision],
		StartTime: ptr.To(j.CreationTimestamp), Outcome: outcome}
	if run.Revision == "" {
		run.Revision = prev.Revision
	}
	if prev.StartTime != nil {
		run.StartTime = prev.StartTime
	}
	switch {
	case !j.DeletionTimestamp.IsZero() && outcome == stratv1.BacktestRunning:
		run.Outcome, run.CompletionTime = stratv1.BacktestStopped, j.DeletionTimestamp
	case j.Status.CompletionTime != nil:
		run.CompletionTime = j.Status.CompletionTime
	case finished != nil:
		run.CompletionTime = ptr.To(finished.LastTransitionTime)
	}
	return run
}

// pruneBacktests deletes finished Jobs beyond the runs status keeps.
func (r *StrategyReconciler) pruneBacktests(ctx context.Context, s *stratv1.Strategy, jobs []batchv1.Job) error {
	kept := map[string]bool{}
	for _, run := range s.Status.Backtests {
		kept[run.Job] = true
	}
	for i := range jobs {
		j := &jobs[i]
		if outcome, _ := lifecycle.JobOutcome(j); kept[j.Name] || j.UID == "" || !j.DeletionTimestamp.IsZero() || outcome == stratv1.BacktestRunning {
			continue
		}
		if err := r.deleteOwned(ctx, s, j); err != nil {
			return err
		}
	}
	return nil
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
