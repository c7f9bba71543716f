package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/controllers"
)

// TestCheck_PassesOnlyWhenTheManagerIsAvailableAndTheAPIAdmitsAStrategy:
// `manager check` (the chart's helm test) fails while the manager's
// Deployment has no available replica, naming it, and passes once it has
// one and the API server serves the CRD; the dry runs leave no Strategy.
func TestCheck_PassesOnlyWhenTheManagerIsAvailableAndTheAPIAdmitsAStrategy(t *testing.T) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Skip("KUBEBUILDER_ASSETS is not set: run with `make test`, which builds kube-apiserver and etcd into bin/")
	}
	env := &envtest.Environment{CRDDirectoryPaths: []string{filepath.Join("..", "..", "config", "crd", "bases")}, ErrorIfCRDPathMissing: true}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	admin, err := env.AddUser(envtest.User{Name: "check-test", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := admin.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", kubeconfig)
	c, err := client.New(cfg, client.Options{Scheme: controllers.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	labels := map[string]string{"app": "manager"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "stratops-controller-manager", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "manager", Image: "stratops:test"}}},
			},
		},
	}
	if err := c.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	args := []string{"--namespace=default", "--deployment=" + d.Name, "--timeout=3s"}
	var out bytes.Buffer
	err = runCheck(args, &out)
	if err == nil || !strings.Contains(err.Error(), "0 of 0 replicas available") {
		t.Fatalf("with no available replica, check = %v; want an error naming the replicas", err)
	}

	d.Status = appsv1.DeploymentStatus{Replicas: 1, ReadyReplicas: 1, AvailableReplicas: 1}
	if err := c.Status().Update(ctx, d); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := runCheck(args, &out); err != nil {
		t.Fatalf("check: %v", err)
	}
	for _, want := range []string{"has an available replica", "admits a valid Strategy and rejects an invalid one"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("check printed:\n%s\nwant a line with %q", out.String(), want)
		}
	}
	list := &stratv1.StrategyList{}
	if err := c.List(ctx, list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 0 {
		t.Errorf("check left %d Strategies behind; its creates are dry runs", len(list.Items))
	}
}
