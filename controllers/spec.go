package controllers

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

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
		return ctrl.Result{}, lifecycle.Stall(stratv1.ReasonInvalidSpec, "%v", err)
	}
	if problems := children.EngineTemplateProblems(sc.strategy); len(problems) > 0 {
		// What already runs is left as it is; nothing new rolls out.
		return ctrl.Result{}, lifecycle.Stall(stratv1.ReasonEngineTemplateNotPermitted, "%s", strings.Join(problems, "; "))
	}
	if sc.catalogJSON, err = r.catalogJSON(sc); err != nil {
		return ctrl.Result{}, err
	}
	if sc.secrets, err = r.resolveSecrets(ctx, sc.strategy); err != nil {
		return ctrl.Result{}, err
	}
	if rs := sc.strategy.Spec.Redis; rs != nil && rs.PasswordSecretRef != nil && (rs.TLS == nil || !rs.TLS.Enabled) {
		// Said once per generation: not a refusal, a Redis inside the
		// cluster's network may be fine without TLS.
		key := fmt.Sprintf("%s|plaintext@%d", client.ObjectKeyFromObject(sc.strategy), sc.strategy.Generation)
		if r.said.first(key) {
			r.event(sc.strategy, corev1.EventTypeWarning, stratv1.EventPasswordWithoutTLS, "Consent",
				"spec.redis sends the password from %s over a connection without TLS (spec.redis.tls.enabled is false)", rs.PasswordSecretRef.Name)
		}
	}
	return ctrl.Result{}, nil
}

// catalogMemo is a Strategy's catalog JSON at one generation.
type catalogMemo struct {
	uid  string
	gen  int64
	json []byte
}

// catalogJSON encodes the Strategy's catalog once per generation: it
// depends on the spec alone. The bytes are shared: never changed.
func (r *StrategyReconciler) catalogJSON(sc *scope) ([]byte, error) {
	s := sc.strategy
	key := client.ObjectKeyFromObject(s).String()
	if m, ok := r.catalogs.Load(key); ok {
		if m := m.(catalogMemo); m.uid == string(s.UID) && m.gen == s.Generation {
			return m.json, nil
		}
	}
	b, err := sc.catalog.Marshal()
	if err != nil {
		return nil, err
	}
	r.catalogs.Store(key, catalogMemo{uid: string(s.UID), gen: s.Generation, json: b})
	return b, nil
}
