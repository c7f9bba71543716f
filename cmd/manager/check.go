package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/controllers"
)

// runCheck is `manager check`, what the chart's `helm test` runs in the
// release's namespace with a ServiceAccount of its own. It passes when the
// install works as a user needs it to:
//   - the manager's Deployment has an available replica (its readiness probe
//     passed: it reaches the API server and its caches synced);
//   - the API server admits a valid Strategy (a server-side dry run: the
//     CRD is served, and its schema and the admission policies let a
//     Backtest through), and rejects an invalid one naming the field.
//
// Nothing is written: both creates are dry runs.
func runCheck(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("manager check", flag.ContinueOnError)
	namespace := fs.String("namespace", os.Getenv("POD_NAMESPACE"), "The release's namespace (default: $POD_NAMESPACE).")
	deployment := fs.String("deployment", "", "The manager's Deployment in --namespace.")
	timeout := fs.Duration("timeout", time.Minute, "How long to wait for the manager to be available.")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *namespace == "" || *deployment == "" {
		return errors.New("check: --namespace and --deployment are required")
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: controllers.Scheme()})
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := managerAvailable(ctx, c, *namespace, *deployment); err != nil {
		return err
	}
	_, _ = fmt.Fprintf(out, "ok: deployment %s/%s has an available replica\n", *namespace, *deployment)
	if err := strategyAdmitted(ctx, c, *namespace); err != nil {
		return err
	}
	_, _ = fmt.Fprintln(out, "ok: the API server admits a valid Strategy and rejects an invalid one (dry runs)")
	return nil
}

func managerAvailable(ctx context.Context, c client.Client, namespace, name string) error {
	var last error
	for {
		d := &appsv1.Deployment{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, d); err != nil {
			last = err
		} else if d.Status.AvailableReplicas < 1 {
			last = fmt.Errorf("%d of %d replicas available", d.Status.AvailableReplicas, d.Status.Replicas)
		} else {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("check: deployment %s/%s: %w", namespace, name, last)
		case <-time.After(2 * time.Second):
		}
	}
}

func strategyAdmitted(ctx context.Context, c client.Client, namespace string) error {
	valid := &stratv1.Strategy{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "helm-test-", Namespace: namespace},
		Spec:       stratv1.StrategySpec{Mode: stratv1.ModeBacktest},
	}
	if err := c.Create(ctx, valid, client.DryRunAll); err != nil {
		return fmt.Errorf("check: a valid Backtest Strategy was refused: %w", err)
	}
	invalid := valid.DeepCopy()
	invalid.Spec.Mode = "Paper"
	switch err := c.Create(ctx, invalid, client.DryRunAll); {
	case err == nil:
		return errors.New("check: a Strategy with spec.mode \"Paper\" was admitted: the CRD's schema is not enforced")
	case !strings.Contains(err.Error(), "spec.mode"):
		return fmt.Errorf("check: a Strategy with spec.mode \"Paper\" was refused without naming spec.mode: %w", err)
	}
	return nil
}
