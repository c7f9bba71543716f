//go:build e2e

// Package e2e runs stratops on a real single-node cluster (test/e2e/cluster)
// as a platform team installs a release: dist/stratops.yaml and the image
// archive beside it, from `make release`. It drives it the way a user
// does: through the API server and kubectl. Run it with `make e2e`, which
// builds everything it needs first (hack/e2e/run.sh).
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stratopsv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/test/e2e/cluster"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
)

const (
	// operatorNS and managerSA are where config/default deploys the manager.
	operatorNS = "stratops-system"
	managerSA  = "stratops-controller-manager"
	managerApp = "stratops-controller-manager"
)

var (
	root string
	kc   *cluster.Cluster
	k8s  client.Client
	cs   kubernetes.Interface
	// version is the release under test (VERSION); dist holds what
	// `make release` wrote for it; image is its image, as stratops.yaml
	// names it.
	version, dist, image string
	// engineImage is the image built from the Dockerfile: the Strategies'
	// sample engines run it.
	engineImage string
	// previous is the release the upgrade scenario starts from, if any.
	previous *previousRelease
	timings  = map[string]time.Duration{}
)

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func TestMain(m *testing.M) {
	os.Exit(mainE2E(m))
}

func mainE2E(m *testing.M) (code int) {
	var err error
	root, err = filepath.Abs("../..")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	raw, err := os.ReadFile(filepath.Join(root, "VERSION"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	version = strings.TrimSpace(string(raw))
	dist = env("STRATOPS_E2E_DIST", filepath.Join(root, "dist"))
	image = "stratops:" + version
	engineImage = env("STRATOPS_E2E_IMG", "localhost/stratops:e2e")
	images := env("STRATOPS_E2E_IMAGES", filepath.Join(root, "bin/e2e/images"))
	logDir := env("STRATOPS_E2E_LOGS", filepath.Join(root, "bin/e2e/logs"))
	_ = os.RemoveAll(logDir)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	archives := []cluster.Archive{
		{Path: filepath.Join(images, "pause.tar")},
		{Path: filepath.Join(images, "stratops.tar")},
		{Path: filepath.Join(images, "redis.tar"), Refs: []string{"redis:7.0"}},
		{Path: filepath.Join(dist, "stratops-"+version+".oci.tar"), Refs: []string{image}},
	}
	previous = previousFromEnv()
	if previous != nil {
		archives = append(archives, cluster.Archive{Path: previous.archive(), Refs: []string{"stratops:" + previous.version}})
	}
	kc, err = cluster.Up(ctx, cluster.Options{
		BinDir: env("STRATOPS_E2E_BIN", filepath.Join(root, "bin/k8s/v1.37.2")),
		Images: archives,
		LogDir: logDir,
		Log:    os.Stderr,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: bringing the cluster up:", err)
		return 1
	}
	timings["cluster up"] = time.Since(start)

	// Teardown runs however the run ends: normally, on a signal, or before
	// go test's own timeout would kill the binary without running defers.
	var once sync.Once
	teardown := func() { once.Do(kc.Down) }
	defer teardown()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		fmt.Fprintln(os.Stderr, "e2e: interrupted, tearing the cluster down")
		teardown()
		os.Exit(2)
	}()
	if d, ok := testDeadline(); ok {
		go func() {
			time.Sleep(time.Until(d) - time.Minute)
			fmt.Fprintln(os.Stderr, "e2e: go test's timeout is a minute away, tearing the cluster down")
			writeDiagnostics(logDir)
			teardown()
			os.Exit(3)
		}()
	}

	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = stratopsv1.AddToScheme(scheme)
	_ = apiextensionsv1.AddToScheme(scheme)
	if k8s, err = client.New(kc.Config, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if cs, err = kubernetes.NewForConfig(kc.Config); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if previous != nil {
		start = time.Now()
		if err := previous.install(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: installing the previous release", previous.version+":", err)
			writeDiagnostics(logDir)
			return 1
		}
		timings["previous release installed, its Strategy Ready"] = time.Since(start)
	}
	start = time.Now()
	if err := deployOperator(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: deploying the operator:", err)
		writeDiagnostics(logDir)
		return 1
	}
	timings["operator deployed and ready"] = time.Since(start)

	code = m.Run()
	if code != 0 {
		writeDiagnostics(logDir)
	}
	start = time.Now()
	teardown()
	timings["teardown"] = time.Since(start)
	if left := kc.Leftovers(); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "e2e: FAIL: teardown left behind: %s\n", strings.Join(left, "; "))
		code = 1
	}
	fmt.Fprintln(os.Stderr, "e2e timings:")
	names := make([]string, 0, len(timings))
	for name := range timings {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(os.Stderr, "  %-40s %s\n", name, timings[name].Round(100*time.Millisecond))
	}
	return code
}

// testDeadline reads go test's -test.timeout.
func testDeadline() (time.Time, bool) {
	for _, a := range os.Args {
		if v, ok := strings.CutPrefix(a, "-test.timeout="); ok {
			if d, err := time.ParseDuration(v); err == nil && d > 0 {
				return time.Now().Add(d), true
			}
		}
	}
	return time.Time{}, false
}

// kubectl runs kubectl against the cluster as the admin.
func kubectl(args ...string) (string, error) {
	cmd := exec.Command("kubectl", args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kc.Kubeconfig)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// deployOperator installs the release under test as the README says
// (kubectl apply --server-side -f stratops.yaml) and waits for the manager.
func deployOperator() error {
	return installManifest(filepath.Join(dist, "stratops.yaml"))
}

func installManifest(path string) error {
	if out, err := kubectl("apply", "--server-side", "-f", path); err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	_, err := kubectl("-n", operatorNS, "rollout", "status", "deployment/"+managerApp, "--timeout=180s")
	return err
}

// writeDiagnostics saves what a person would look at when a run failed.
func writeDiagnostics(dir string) {
	for name, args := range map[string][]string{
		"get-all.txt":      {"get", "all,strategies,leases,events", "-A", "-o", "wide"},
		"strategies.yaml":  {"get", "strategies", "-A", "-o", "yaml"},
		"manager-logs.txt": {"-n", operatorNS, "logs", "-l", "app.kubernetes.io/component=manager", "--tail=-1", "--prefix", "--all-containers"},
		"nodes.yaml":       {"get", "nodes", "-o", "yaml"},
	} {
		out, err := kubectl(args...)
		if err != nil {
			out += "\n" + err.Error()
		}
		_ = os.WriteFile(filepath.Join(dir, name), []byte(out), 0o644)
	}
	// Every pod's log, from the node (the pods may be gone by then).
	if out, err := kubectl("get", "pods", "-A", "-o", "jsonpath={range .items[*]}{.metadata.namespace} {.metadata.name}{\"\\n\"}{end}"); err == nil {
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			f := strings.Fields(line)
			if len(f) != 2 {
				continue
			}
			logs, err := kubectl("-n", f[0], "logs", f[1], "--all-containers", "--timestamps")
			if err != nil {
				logs += "\n" + err.Error()
			}
			_ = os.WriteFile(filepath.Join(dir, "pod_"+f[0]+"_"+f[1]+".log"), []byte(logs), 0o644)
		}
	}
	fmt.Fprintln(os.Stderr, "e2e: cluster state and component logs are in", dir)
}
