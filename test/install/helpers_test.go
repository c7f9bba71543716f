package install

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// repoRoot is the repository's root, from this file's place in it.
func repoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("no caller")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// tool is the path of a tool make test builds into bin/ and names in an
// environment variable.
func tool(t testing.TB, env string) string {
	t.Helper()
	p := os.Getenv(env)
	if p == "" {
		t.Fatalf("%s is not set: run the tests with `make test`, which builds it into bin/", env)
	}
	return p
}

// run runs a command in the repository's root and returns its stdout; a
// failure is returned with its stderr.
func run(t testing.TB, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = repoRoot(t)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", filepath.Base(name), strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// decodeObjects splits a multi-document YAML stream into objects.
func decodeObjects(t testing.TB, manifest string) []*unstructured.Unstructured {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(manifest), 4096)
	var objs []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return objs
			}
			t.Fatalf("decoding manifests: %v", err)
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
}

// apiServer is one envtest kube-apiserver, shared by the package's tests,
// with the Strategy CRD and the Prometheus Operator's CRDs installed.
type apiServer struct {
	cfg    *rest.Config
	client client.Client
}

var (
	sharedOnce sync.Once
	shared     *apiServer
	sharedEnv  *envtest.Environment
	sharedErr  error
)

func startAPIServer(t testing.TB) *apiServer {
	t.Helper()
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run the tests with `make test`, which builds kube-apiserver and etcd into bin/")
	}
	crds := tool(t, "MONITORING_CRDS")
	sharedOnce.Do(func() {
		sharedEnv = &envtest.Environment{
			CRDDirectoryPaths:     []string{filepath.Join(repoRoot(t), "config", "crd", "bases"), crds},
			ErrorIfCRDPathMissing: true,
		}
		cfg, err := sharedEnv.Start()
		if err != nil {
			sharedErr = err
			return
		}
		scheme := kruntime.NewScheme()
		if err := clientgoscheme.AddToScheme(scheme); err != nil {
			sharedErr = err
			return
		}
		if err := apiextensionsv1.AddToScheme(scheme); err != nil {
			sharedErr = err
			return
		}
		c, err := client.New(cfg, client.Options{Scheme: scheme})
		if err != nil {
			sharedErr = err
			return
		}
		shared = &apiServer{cfg: cfg, client: client.WithFieldValidation(c, metav1.FieldValidationStrict)}
	})
	if sharedErr != nil {
		t.Fatalf("starting envtest: %v", sharedErr)
	}
	return shared
}

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedEnv != nil {
		if err := sharedEnv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping envtest:", err)
		}
	}
	os.Exit(code)
}

// ensureNamespace creates a namespace (for real: a dry run cannot place
// objects in a namespace that does not exist).
func (a *apiServer) ensureNamespace(t testing.TB, name string) {
	t.Helper()
	err := a.client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// dryRunApply applies an object server-side, as a dry run, with strict
// field validation: the API server's whole verdict (schema, CEL rules,
// defaulting, admission) without a change.
func (a *apiServer) dryRunApply(obj *unstructured.Unstructured) error {
	return a.client.Apply(context.Background(), client.ApplyConfigurationFromUnstructured(obj),
		client.FieldOwner("stratops-install-test"), client.ForceOwnership, client.DryRunAll)
}

// kubeconfig writes a kubeconfig of an admin of the API server, for helm
// and kubectl.
func (a *apiServer) kubeconfig(t testing.TB) string {
	t.Helper()
	user, err := sharedEnv.AddUser(envtest.User{Name: "install-test-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
