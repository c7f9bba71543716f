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
	"github.com/stratops/stratops/pkg/messaging"
)

// reconcileSpec turns the spec into the catalog and resolves the Secrets
// it references.
func (r *StrategyReconciler) reconcileSpec(ctx context.Context, sc *scope) (ctrl.Result, error) {
	var err error
	if sc.catalog, sc.catalogJSON, err = r.catalogOf(sc.strategy); err != nil {
		return ctrl.Result{}, err
	}
	if problems := children.EngineTemplateProblems(sc.strategy); len(problems) > 0 {
		// What already runs is left as it is; nothing new rolls out.
		return ctrl.Result{}, lifecycle.Stall(stratv1.ReasonEngineTemplateNotPermitted, "%s", strings.Join(problems, "; "))
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

// catalogMemo is a Strategy's catalog, and its JSON, at one generation.
type catalogMemo struct {
	uid     string
	gen     int64
	catalog messaging.Catalog
	json    []byte
}

// catalogOf is the Strategy's catalog and its JSON, made (and validated)
// once per generation: they depend on the spec alone. Both are shared:
// never changed. An invalid catalog stalls the Strategy.
func (r *StrategyReconciler) catalogOf(s *stratv1.Strategy) (messaging.Catalog, []byte, error) {
	key := client.ObjectKeyFromObject(s).String()
	if m, ok := r.catalogs.Load(key); ok {
		if m := m.(catalogMemo); m.uid == string(s.UID) && m.gen == s.Generation {
			return m.catalog, m.json, nil
		}
	}
	c, err := children.Catalog(s)
	if err != nil {
		return c, nil, lifecycle.Stall(stratv1.ReasonInvalidSpec, "%v", err)
	}
	b, err := c.Marshal()
	if err != nil {
		return c, nil, err
	}
	r.catalogs.Store(key, catalogMemo{uid: string(s.UID), gen: s.Generation, catalog: c, json: b})
	return c, b, nil
}
