package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/children"
	"github.com/stratops/stratops/internal/lifecycle"
)

// reconcileEngine runs the strategy's own workload: a Job in Backtest
// (engine_backtest.go), a Deployment in Live (engine_live.go), only after
// the gate. An engine of the other mode, or one the spec no longer has, is
// removed first (engine_removal.go).
func (r *StrategyReconciler) reconcileEngine(ctx context.Context, sc *scope) (ctrl.Result, error) {
	s := sc.strategy
	if removing, err := r.removeEngine(ctx, s); err != nil || removing {
		return ctrl.Result{RequeueAfter: time.Second}, err
	}
	if s.Spec.Engine == nil {
		lifecycle.RemoveCondition(s, stratv1.ConditionEngineReady)
		s.Status.Engine = nil
		return ctrl.Result{}, nil
	}
	if sc.redisState == lifecycle.RedisGated {
		setCondition(s, stratv1.ConditionEngineReady, lifecycle.DecideEngine(lifecycle.EngineFacts{Redis: sc.redisState}).EngineReady)
		return ctrl.Result{}, nil
	}
	if err := r.ensureEngineServiceAccount(ctx, s); err != nil {
		return ctrl.Result{}, err
	}
	tmpl, rev, err := r.engineTemplate(sc)
	if err != nil {
		return ctrl.Result{}, err
	}
	if err := r.judgePodSecurity(ctx, s, tmpl, rev.Name); err != nil {
		return ctrl.Result{}, err
	}
	if s.Spec.Mode == stratv1.ModeBacktest {
		return ctrl.Result{}, r.reconcileBacktest(ctx, sc, tmpl, rev.Name)
	}
	return ctrl.Result{}, r.reconcileLive(ctx, sc, tmpl, rev)
}

// engineTemplate is the engine's pod template at the revision the spec
// asks for: the user's template, the pod contract, the logger's token,
// and the engine's own ServiceAccount.
func (r *StrategyReconciler) engineTemplate(sc *scope) (*corev1ac.PodTemplateSpecApplyConfiguration, children.Revision, error) {
	s := sc.strategy
	rev, err := children.NewRevision(s, engineOwn{Mode: s.Spec.Mode, Template: s.Spec.Engine.Template, WithRedis: sc.redis != nil},
		sc.catalogSum, secretValues(sc), sc.tokenUID, r.revisionKey)
	if err != nil {
		return nil, rev, err
	}
	env := children.PodEnv(s, sc.redis != nil, rev.Catalog)
	if env.Redis == nil {
		// A backtest on the in-process bus forwards its events to the
		// logger, so that its audit trail is complete.
		env.EventLoggerURL = children.EventLoggerURL(s)
	}
	env.EventLoggerToken = children.EventLoggerTokenRef(s)
	tmpl, err := children.EnginePodTemplate(s, env, rev.Annotations())
	if err != nil {
		return nil, rev, lifecycle.Stall(stratv1.ReasonInvalidSpec, "%v", err)
	}
	return children.WithEngineIdentity(s, tmpl), rev, nil
}

// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch

// judgePodSecurity holds the engine's pod, as the operator would create
// it (its own additions included), to the official Pod Security checks at
// the namespace's enforce level, never below baseline: a Strategy gets its
// author no pod the namespace would not admit of a workload of theirs.
// The namespace's labels come from the metadata cache; a label change
// brings a reconcile. What already runs is left as it is.
// The pod is a function of the Strategy and its revision, so a passing
// verdict is remembered for the revision and the level.
func (r *StrategyReconciler) judgePodSecurity(ctx context.Context, s *stratv1.Strategy, tmpl *corev1ac.PodTemplateSpecApplyConfiguration, revision string) error {
	nsMeta := &metav1.PartialObjectMetadata{}
	nsMeta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	if err := r.metadataCache().Get(ctx, client.ObjectKey{Name: s.Namespace}, nsMeta); err != nil {
		return fmt.Errorf("reading namespace %s: %w", s.Namespace, err)
	}
	lv := children.PodSecurityLevel(nsMeta.Labels)
	key := client.ObjectKeyFromObject(s).String() + "|" + revision + "|" + lv.String()
	if _, passed := r.podSecurityPassed.Load(key); passed {
		return nil
	}
	pod, err := children.TypedPodTemplate(tmpl)
	if err != nil {
		return err
	}
	problems, err := children.PodSecurityProblems(lv, pod)
	if err != nil {
		return err
	}
	if len(problems) == 0 {
		r.podSecurityPassed.Store(key, struct{}{})
		return nil
	}
	return lifecycle.Stall(stratv1.ReasonEngineTemplateNotPermitted,
		"spec.engine.template: the engine's pod would violate Pod Security %q (namespace %s, %s): %s",
		lv.Level, s.Namespace, lv.Version, strings.Join(problems, "; "))
}

// ensureEngineServiceAccount provisions the engine's own ServiceAccount.
// One of that name that the Strategy does not own stalls it: the engine
// runs as no one else's identity.
func (r *StrategyReconciler) ensureEngineServiceAccount(ctx context.Context, s *stratv1.Strategy) error {
	_, err := ensure(ctx, r, s, children.EngineName(s), &corev1.ServiceAccount{},
		children.EngineServiceAccount(s), corev1ac.ExtractServiceAccount, nil)
	if st, ok := lifecycle.AsStalled(err); ok && st.Reason == stratv1.ReasonNameConflict {
		return lifecycle.Stall(stratv1.ReasonServiceAccountNotOwned,
			"ServiceAccount %q exists and is not owned by this Strategy: the engine runs only as its own ServiceAccount; rename the Strategy or delete that ServiceAccount", children.EngineName(s))
	}
	return err
}

// setCondition sets a condition as a decision gave it.
func setCondition(s *stratv1.Strategy, t string, c lifecycle.Condition) {
	lifecycle.SetCondition(s, t, c.Ready, c.Reason, c.Message)
}

// conditionReason is the reason of a condition of s, empty when absent.
func conditionReason(s *stratv1.Strategy, t string) string {
	if c := meta.FindStatusCondition(s.Status.Conditions, t); c != nil {
		return c.Reason
	}
	return ""
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
	return lifecycle.Stall(stratv1.ReasonInvalidEngineTemplate,
		"spec.engine.template: the API server refused the engine's %s: %s", kind, st.Message)
}
