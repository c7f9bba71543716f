package controllers

import (
	"context"

	ctrl "sigs.k8s.io/controller-runtime"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/children"
	"github.com/stratops/stratops/internal/lifecycle"
)

// reconcileSpec turns the spec into the catalog and resolves the Secrets
// it references.
func (r *StrategyReconciler) reconcileSpec(ctx context.Context, sc *scope) (ctrl.Result, error) {
	var err error
	if sc.catalog, err = children.Catalog(sc.strategy); err != nil {
		return ctrl.Result{}, lifecycle.Stalled(stratv1.ReasonInvalidSpec, "%v", err)
	}
	if sc.catalogJSON, err = sc.catalog.Marshal(); err != nil {
		return ctrl.Result{}, err
	}
	if sc.secrets, err = r.resolveSecrets(ctx, sc.strategy); err != nil {
		return ctrl.Result{}, err
	}
	versions := make([]string, len(sc.secrets))
	for i, sec := range sc.secrets {
		versions[i] = sec.ref.Name + "/" + sec.resourceVersion
	}
	sc.configHash = children.ConfigHash(sc.catalogJSON, versions)
	return ctrl.Result{}, nil
}
