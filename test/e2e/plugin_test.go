//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/stratops/stratops/pkg/messaging"
)

var (
	pluginOnce sync.Once
	pluginPath string
	pluginErr  error
)

// plugin runs kubectl-stratops, built once, as the cluster's admin (or
// whom --as names), and returns what it printed, stdout and stderr.
func plugin(t *testing.T, args ...string) (string, error) {
	t.Helper()
	pluginOnce.Do(func() {
		pluginPath = filepath.Join(root, "bin", "e2e", "kubectl-stratops")
		build := exec.Command("go", "build", "-o", pluginPath, "./cmd/kubectl-stratops")
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			pluginErr = fmt.Errorf("building kubectl-stratops: %v\n%s", err, out)
		}
	})
	if pluginErr != nil {
		t.Fatal(pluginErr)
	}
	cmd := exec.Command(pluginPath, append([]string{"--kubeconfig", kc.Kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// bindUsers binds, in ns, the user trader to the built-in edit role and
// the user approver to edit and stratops-strategy-approver.
func bindUsers(t *testing.T, ns string) {
	t.Helper()
	for _, b := range []struct{ user, role string }{{"trader", "edit"}, {"approver", "edit"}, {"approver", "stratops-strategy-approver"}} {
		rb := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: b.user + "-" + b.role},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: b.role},
			Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: b.user}},
		}
		if err := k8s.Create(context.Background(), rb); err != nil {
			t.Fatal(err)
		}
	}
}

// followEvents runs `kubectl stratops events --follow` (through a real
// port-forward to the leading logger pod, with the token Secret) and
// publishes a marked event from the host: it is printed.
func followEvents(t *testing.T, ns, name, redisAddr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pluginOnce.Do(func() {}) // built by an earlier call
	cmd := exec.CommandContext(ctx, pluginPath, "--kubeconfig", kc.Kubeconfig, "-n", ns, "events", name, "--follow",
		"--tail", "1", "--channel", "strategy:instructions")
	var out bytes.Buffer
	var mu sync.Mutex
	cmd.Stdout, cmd.Stderr = &lockedBuffer{mu: &mu, b: &out}, &lockedBuffer{mu: &mu, b: &out}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }()
	c, err := messaging.Connect(ctx, messaging.Config{Mode: messaging.ModeLive, KeyPrefix: name + ":",
		Redis: messaging.RedisConfig{Addrs: []string{redisAddr}}}, messaging.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close(ctx) }()
	eventually(t, 45*time.Second, "kubectl stratops events --follow prints an event published now", func() error {
		if err := c.Publish(ctx, "strategy:instructions", map[string]string{"marker": "e2e-follow"}); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		if !strings.Contains(out.String(), "e2e-follow") {
			return fmt.Errorf("printed so far: %q", out.String())
		}
		return nil
	})
	mu.Lock()
	t.Logf("kubectl stratops events %s --follow, through a port-forward:\n%s", name, out.String())
	mu.Unlock()
}

type lockedBuffer struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
