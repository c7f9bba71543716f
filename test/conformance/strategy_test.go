// Package conformance tests `eventlogger conformance` where it meets a
// cluster: --strategy reads a Strategy's catalog from a real API server
// (the event logger itself links no Kubernetes package).
package conformance

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/stratops/stratops/pkg/messaging"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "conformance-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "eventlogger")
	if out, err := exec.Command("go", "build", "-o", binary, "../../cmd/eventlogger").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the event logger: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// conformanceRun runs `eventlogger conformance` and returns its exit
// status and what it printed.
func conformanceRun(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"conformance", "--duration=4s"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		out := stdout.String()
		if ee.ExitCode() == 2 {
			out += stderr.String()
		}
		return ee.ExitCode(), out
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, stdout.String()
}

func needDebianPython(t *testing.T) {
	t.Helper()
	if out, err := exec.Command("/usr/bin/python3", "-c", "import redis").CombinedOutput(); err != nil {
		t.Fatalf("/usr/bin/python3 with redis-py is needed (make test installs python3-redis): %v\n%s", err, out)
	}
}

// TestConformance_TakesAStrategysCatalogFromTheCluster: --strategy reads
// the catalog the Strategy's event logger mounts (with kubectl, from the
// kubeconfig's cluster: a real API server here). That catalog's key prefix
// reaches the component, and its own TTL policy is the one judged: with
// position:snapshot at 60 s there, the broken component's TTL is no fault.
func TestConformance_TakesAStrategysCatalogFromTheCluster(t *testing.T) {
	needDebianPython(t)
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run the tests with `make test`, which builds kube-apiserver and etcd into bin/")
	}
	if _, err := exec.LookPath("kubectl"); err != nil {
		t.Fatal("--strategy reads the cluster with kubectl, which is not on PATH")
	}
	env := &envtest.Environment{}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	user, err := env.AddUser(envtest.User{Name: "conformance", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cat := messaging.Standard(messaging.ModeLive)
	cat.KeyPrefix = "desk:"
	for i := range cat.Keys {
		if cat.Keys[i].Name == "position:snapshot" {
			cat.Keys[i].TTL = messaging.Duration{Duration: time.Minute}
		}
	}
	raw, _ := cat.Marshal()
	ctx := context.Background()
	if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "desk-catalog-1a2b3c"}, Data: map[string]string{messaging.CatalogFileName: string(raw)},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "desk-eventlogger"}
	if _, err := cs.AppsV1().Deployments("default").Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "desk-eventlogger"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
				Containers: []corev1.Container{{Name: "eventlogger", Image: "stratops:test"}},
				Volumes: []corev1.Volume{{Name: "catalog", VolumeSource: corev1.VolumeSource{
					ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "desk-catalog-1a2b3c"}}}}},
			}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	code, report := conformanceRun(t, []string{"KUBECONFIG=" + kubeconfig}, "--strategy=default/desk", "--", "/usr/bin/python3", "../../cmd/eventlogger/testdata/broken_component.py")
	t.Logf("with the cluster's catalog:\n%s", report)
	if code != 1 || !strings.Contains(report, "FAIL: 3 faults") || strings.Contains(report, "key position:snapshot:") {
		t.Errorf("exit status %d; want 1 with 3 faults, position:snapshot's 60 s TTL within the cluster catalog's policy", code)
	}
	if !strings.Contains(report, "position:snapshot  true        1m0s") {
		t.Errorf("the report does not judge position:snapshot by the cluster catalog's 1m0s policy")
	}
	if code, _ := conformanceRun(t, []string{"KUBECONFIG=" + kubeconfig}, "--strategy=default/nope", "--", "true"); code != 2 {
		t.Errorf("a Strategy that is not there: exit status %d, want 2", code)
	}
}
