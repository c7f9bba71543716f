package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/stratops/stratops/controllers"
	"github.com/stratops/stratops/internal/localrun"
	"github.com/stratops/stratops/internal/redisserver"
)

var update = flag.Bool("update", false, "rewrite the golden files with what the commands print")

// The suite: a real API server (envtest) with the operator running, a
// real redis-server, and the event logger binary run as the operator
// provisions it by a local stand-in for the kubelet (no pods: the plugin
// reaches the logger with --logger-url, as on make run).
var (
	k8s        client.Client
	kubeconfig string
	redisSrv   *redisserver.Server
	kubelet    *localrun.Kubelet
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(suite(m))
}

func suite(m *testing.M) int {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		fmt.Fprintln(os.Stderr, "KUBEBUILDER_ASSETS is not set: run the tests with `make test`, which builds kube-apiserver and etcd into bin/")
		return 1
	}
	ctrl.SetLogger(logr.Discard())
	dir, err := os.MkdirTemp("", "kubectl-stratops-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	env := &envtest.Environment{CRDDirectoryPaths: []string{filepath.Join("..", "..", "config", "crd", "bases")}, ErrorIfCRDPathMissing: true}
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting envtest:", err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	if kubeconfig, err = writeKubeconfig(env, dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if redisSrv, err = redisserver.Start(redisserver.Options{}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer redisSrv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop, err := startOperator(ctx, cfg, dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stop()
	return m.Run()
}

func writeKubeconfig(env *envtest.Environment, dir string) (string, error) {
	user, err := env.AddUser(envtest.User{Name: "plugin-user", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", err
	}
	b, err := user.KubeConfig()
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "kubeconfig")
	return path, os.WriteFile(path, b, 0o600)
}

// startOperator runs the manager and the local kubelet until stop.
func startOperator(ctx context.Context, cfg *rest.Config, dir string) (func(), error) {
	mgr, err := ctrl.NewManager(cfg, controllers.ManagerOptions(ctrl.Options{
		Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
	}))
	if err != nil {
		return nil, err
	}
	if _, err := controllers.Setup(ctx, mgr, controllers.Options{EventLoggerImage: "local", StatusRefreshInterval: time.Second}); err != nil {
		return nil, err
	}
	if k8s, err = client.New(cfg, client.Options{Scheme: controllers.Scheme()}); err != nil {
		return nil, err
	}
	logger := filepath.Join(dir, "eventlogger")
	if out, err := exec.Command("go", "build", "-o", logger, "../eventlogger").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building the event logger: %v\n%s", err, out)
	}
	kubelet = &localrun.Kubelet{Client: k8s, Binary: logger, Dir: dir, Log: logr.Discard()}
	mctx, cancel := context.WithCancel(ctx)
	mgrDone, kubeletDone := make(chan error, 1), make(chan struct{})
	go func() { mgrDone <- mgr.Start(mctx) }()
	go func() { kubelet.Run(mctx); close(kubeletDone) }()
	return func() {
		cancel()
		if err := <-mgrDone; err != nil {
			fmt.Fprintln(os.Stderr, "the operator stopped:", err)
		}
		<-kubeletDone
	}, nil
}

// run runs the plugin with args (and the suite's kubeconfig), stdin in,
// and returns what it printed and its error.
func run(ctx context.Context, in string, args ...string) (string, error) {
	var out bytes.Buffer
	streams := genericiooptions.IOStreams{In: strings.NewReader(in), Out: &out, ErrOut: io.Discard}
	cmd := newRootCommand(streams)
	cmd.SetArgs(append([]string{"--kubeconfig", kubeconfig}, args...))
	err := cmd.ExecuteContext(ctx)
	return out.String(), err
}

// golden compares got, normalized, with testdata/<name>.golden.
func golden(t *testing.T, name, got string, normalize ...func(string) string) {
	t.Helper()
	for _, n := range normalize {
		got = n(got)
	}
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from %s (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", name, path, got, want)
	}
}

// replace returns a normalizer replacing every match of re with repl.
func replace(re, repl string) func(string) string {
	r := regexp.MustCompile(re)
	return func(s string) string { return r.ReplaceAllString(s, repl) }
}

func streamsTo(w io.Writer) genericiooptions.IOStreams {
	return genericiooptions.IOStreams{In: strings.NewReader(""), Out: w, ErrOut: io.Discard}
}

// newRootFlags are kubectl's flags as the suite's user in namespace ns.
func newRootFlags(ns string) *genericclioptions.ConfigFlags {
	f := genericclioptions.NewConfigFlags(true)
	f.KubeConfig, f.Namespace = &kubeconfig, &ns
	return f
}
