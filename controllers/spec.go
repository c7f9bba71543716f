package controllers

import (
	"context"
	"crypto/sha256"
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
	if sc.catalog, sc.catalogSum, err = r.catalogOf(sc.strategy); err != nil {
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

// catalogMemo is a Strategy's catalog, and the digest of its JSON, at one
// generation. Not the JSON itself: at a thousand Strategies those were
// 4 MiB the manager kept to write a ConfigMap made once.
type catalogMemo struct {
	uid     string
	gen     int64
	catalog messaging.Catalog
	sum     [sha256.Size]byte
}

// catalogOf is the Strategy's catalog and the SHA-256 of its JSON, made
// (and validated) once per generation: they depend on the spec alone. The
// catalog is shared: never changed. An invalid catalog stalls the
// Strategy.
func (r *StrategyReconciler) catalogOf(s *stratv1.Strategy) (messaging.Catalog, [sha256.Size]byte, error) {
	key := client.ObjectKeyFromObject(s).String()
	if m, ok := r.catalogs.Load(key); ok {
		if m := m.(catalogMemo); m.uid == string(s.UID) && m.gen == s.Generation {
			return m.catalog, m.sum, nil
		}
	}
	c, err := children.Catalog(s)
	if err != nil {
		return c, [sha256.Size]byte{}, lifecycle.Stall(stratv1.ReasonInvalidSpec, "%v", err)
	}
	b, err := c.Marshal()
	if err != nil {
		return c, [sha256.Size]byte{}, err
	}
	sum := sha256.Sum256(b)
	r.catalogs.Store(key, catalogMemo{uid: string(s.UID), gen: s.Generation, catalog: c, sum: sum})
	return c, sum, nil
}
