package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stratv1 "github.com/stratops/stratops/api/v1"
)

// differsIn reads what a held revision changes from the UpdatePending
// condition's message.
var differsIn = regexp.MustCompile(`It differs in ([^.]*)\.`)

// pending is a held revision, as the operator reports it.
type pending struct {
	revision, running, differs string
}

func pendingOf(s *stratv1.Strategy) (pending, bool) {
	c := meta.FindStatusCondition(s.Status.Conditions, stratv1.ConditionUpdatePending)
	e := s.Status.Engine
	if c == nil || c.Status != "True" || e == nil || e.UpdateRevision == "" || e.UpdateRevision == e.Revision {
		return pending{}, false
	}
	p := pending{revision: e.UpdateRevision, running: e.Revision, differs: "(not said)"}
	if m := differsIn.FindStringSubmatch(c.Message); m != nil {
		p.differs = m[1]
	}
	return p, true
}

// approveCommand approves the held revision of a Strategy's engine.
func (p *plugin) approveCommand() *cobra.Command {
	var yes bool
	cmd := p.nameCommand("approve NAME", "Approve the held revision of a Live engine (updateStrategy Manual): shows what differs, asks, then writes stratops.dev/approve-revision",
		func(ctx context.Context, cmd *cobra.Command, name string) error {
			s, err := p.strategy(ctx, name)
			if err != nil {
				return err
			}
			held, ok := pendingOf(s)
			if !ok {
				return fmt.Errorf("nothing to approve: strategy %s has no held revision (status.engine.updateRevision is the running one)", name)
			}
			fmt.Fprintf(p.streams.Out, "Revision %s is held; the engine runs %s.\nIt differs in: %s\n", held.revision, held.running, held.differs)
			if !yes {
				fmt.Fprintf(p.streams.Out, "Approve revision %s? [y/N] ", held.revision)
				answer, _ := bufio.NewReader(p.streams.In).ReadString('\n')
				if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
					return errors.New("not approved")
				}
			}
			return p.approve(ctx, name, held.revision)
		})
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "approve without asking")
	return cmd
}

// approve writes the approval of revision, refusing when the held
// revision is no longer the one shown (the optimistic lock makes a change
// between this read and the write fail too).
func (p *plugin) approve(ctx context.Context, name, revision string) error {
	s, err := p.strategy(ctx, name)
	if err != nil {
		return err
	}
	now, ok := pendingOf(s)
	if !ok || now.revision != revision {
		return fmt.Errorf("not approved: the held revision changed from %s to %q since it was shown; run approve again", revision, now.revision)
	}
	base := s.DeepCopy()
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	s.Annotations[stratv1.AnnotationApproveRevision] = revision
	err = p.c.Patch(ctx, s, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
	switch {
	case apierrors.IsConflict(err):
		return fmt.Errorf("not approved: strategy %s changed since it was shown; run approve again", name)
	case apierrors.IsForbidden(err) || apierrors.IsInvalid(err):
		// The admission policy stratops-strategy-authority asks for the verb
		// approve on the Strategy (ClusterRole stratops-strategy-approver).
		return fmt.Errorf("not approved: %w", err)
	case err != nil:
		return err
	}
	_, err = fmt.Fprintf(p.streams.Out, "✔ approved revision %s of strategy %s: the engine rolls to it once\n", revision, name)
	return err
}
