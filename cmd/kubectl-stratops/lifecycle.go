package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stratv1 "github.com/stratops/stratops/api/v1"
)

// strategyPatch is a change to one Strategy, sent as a merge patch from
// the copy it was read as (only the fields changed are sent).
type strategyPatch struct {
	s, base *stratv1.Strategy
	did     string
}

func (sp *strategyPatch) engineStopped(stopped bool) error {
	if sp.s.Spec.Engine == nil {
		return errors.New("the Strategy has no spec.engine: there is no engine to stop or start")
	}
	if sp.s.Spec.Mode != stratv1.ModeLive {
		return errors.New("spec.engine.stopped is for a Live engine; a backtest's engine is a Job that runs to its end")
	}
	sp.s.Spec.Engine.Stopped = stopped
	sp.did = map[bool]string{true: "engine stopped (spec.engine.stopped: true)", false: "engine started (spec.engine.stopped: false)"}[stopped]
	return nil
}

func (sp *strategyPatch) suspend(suspend bool) {
	sp.s.Spec.Suspend = suspend
	sp.did = map[bool]string{true: "suspended (spec.suspend: true)", false: "resumed (spec.suspend: false)"}[suspend]
}

// setCommand changes one field of a Strategy's spec.
func (p *plugin) setCommand(use, short string, change func(*strategyPatch) error) *cobra.Command {
	return p.nameCommand(use+" NAME", short, func(ctx context.Context, cmd *cobra.Command, name string) error {
		s, err := p.strategy(ctx, name)
		if err != nil {
			return err
		}
		sp := &strategyPatch{s: s, base: s.DeepCopy()}
		if err := change(sp); err != nil {
			return fmt.Errorf("%s %s: %w", use, name, err)
		}
		if err := p.c.Patch(ctx, s, client.MergeFrom(sp.base)); err != nil {
			return forbidden(err, "patch", "strategies", name, p.ns)
		}
		_, err = fmt.Fprintf(p.streams.Out, "strategy.stratops.dev/%s %s\n", name, sp.did)
		return err
	})
}

// reconcileCommand asks the operator for a reconcile now and waits for it
// to be handled.
func (p *plugin) reconcileCommand() *cobra.Command {
	var timeout time.Duration
	cmd := p.nameCommand("reconcile NAME", "Ask the operator to reconcile a Strategy now (stratops.dev/reconcile-requested-at) and wait until it did",
		func(ctx context.Context, cmd *cobra.Command, name string) error {
			s, err := p.strategy(ctx, name)
			if err != nil {
				return err
			}
			base := s.DeepCopy()
			at := time.Now().UTC().Format(time.RFC3339Nano)
			if s.Annotations == nil {
				s.Annotations = map[string]string{}
			}
			s.Annotations[stratv1.AnnotationReconcileRequestedAt] = at
			if err := p.c.Patch(ctx, s, client.MergeFrom(base)); err != nil {
				return forbidden(err, "patch", "strategies", name, p.ns)
			}
			fmt.Fprintf(p.streams.Out, "► reconcile requested at %s\n", at)
			deadline := time.Now().Add(timeout)
			for {
				if err := p.c.Get(ctx, client.ObjectKeyFromObject(s), s); err != nil {
					return err
				}
				if s.Status.LastHandledReconcileAt == at {
					_, err := fmt.Fprintf(p.streams.Out, "✔ reconciled: phase %s\n", s.Status.Phase)
					return err
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("the operator did not handle the request within %s (is it running?)", timeout)
				}
				time.Sleep(200 * time.Millisecond)
			}
		})
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "how long to wait for the operator")
	return cmd
}
