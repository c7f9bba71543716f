//go:build e2e

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stratopsv1 "github.com/stratops/stratops/api/v1"
)

// TestANarrowAuthorGetsOnlyWhatTheirRightsAllow, on the real cluster with
// the policies stratops.yaml installs: a user bound only to Strategies is
// refused an engine (which would be a Deployment they may not create),
// naming the missing right; a user who may create Deployments gets one,
// whose pod runs as "<name>-engine", a ServiceAccount the Strategy owns.
func TestANarrowAuthorGetsOnlyWhatTheirRightsAllow(t *testing.T) {
	timed(t)
	ctx := context.Background()
	ns := namespace(t, "e2e-authority")
	srv := hostRedis(t)
	editor := rbacv1.PolicyRule{APIGroups: []string{"stratops.dev"}, Resources: []string{"strategies"},
		Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}}
	for user, rules := range map[string][]rbacv1.PolicyRule{
		"tenant":  {editor},
		"builder": {editor, {APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"create"}}},
	} {
		if err := k8s.Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: user}, Rules: rules}); err != nil {
			t.Fatal(err)
		}
		if err := k8s.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: user},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: user},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}}}); err != nil {
			t.Fatal(err)
		}
	}
	as := func(user string) client.Client {
		cfg := rest.CopyConfig(kc.Config)
		cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
		c, err := client.New(cfg, client.Options{Scheme: k8s.Scheme()})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	strategy := func(name string) *stratopsv1.Strategy {
		return &stratopsv1.Strategy{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: stratopsv1.StrategySpec{
				Mode:   stratopsv1.ModeLive,
				Redis:  &stratopsv1.RedisSpec{Address: srv.Addr, KeyPrefix: name + ":", HealthCheckInterval: &metav1.Duration{Duration: 3 * time.Second}},
				Engine: sampleEngine(),
			},
		}
	}

	err := as("tenant").Create(ctx, strategy("refused"))
	if err == nil || !strings.Contains(err.Error(), "spec.engine: tenant may not create deployments.apps in namespace "+ns) {
		t.Fatalf("the narrow author's engine: %v, want a refusal naming the right", err)
	}
	t.Logf("refused: %v", err)

	if err := as("builder").Create(ctx, strategy("allowed")); err != nil {
		t.Fatalf("an author who may create Deployments: %v", err)
	}
	if out, err := kubectl("-n", ns, "wait", "--for=condition=Ready", "strategy/allowed", "--timeout=180s"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	engine := runningEnginePod(t, ns, "allowed")
	if engine.Spec.ServiceAccountName != "allowed-engine" {
		t.Fatalf("the engine runs as %q, want allowed-engine", engine.Spec.ServiceAccountName)
	}
	sa := &corev1.ServiceAccount{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "allowed-engine"}, sa); err != nil {
		t.Fatal(err)
	}
	s, err := getStrategy(ns, "allowed")
	if err != nil {
		t.Fatal(err)
	}
	if !metav1.IsControlledBy(sa, s) {
		t.Fatalf("ServiceAccount allowed-engine is not owned by the Strategy: %+v", sa.OwnerReferences)
	}
	list := &stratopsv1.StrategyList{}
	if err := k8s.List(ctx, list, client.InNamespace(ns)); err != nil || len(list.Items) != 1 {
		t.Fatalf("Strategies in the namespace: %d (%v), want only the allowed one", len(list.Items), err)
	}
}
