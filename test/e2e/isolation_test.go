//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stratopsv1 "github.com/stratops/stratops/api/v1"
)

// TestTenantIsolation runs a Live Strategy on the real cluster and checks
// what it gives its author and its neighbours: the engine pod runs as its
// own ServiceAccount with no API token mounted; the event logger's API, on
// its pod's address, refuses a request without the Strategy's token and
// serves one with it, while health stays open; the logger's NetworkPolicy
// is in place (this cluster's bridge plugin does not enforce it); and a
// namespace's editors and viewers get Strategies through the built-in
// edit and view roles. Last, removing spec.engine leaves no engine pod.
func TestTenantIsolation(t *testing.T) {
	timed(t)
	ctx := context.Background()
	ns := namespace(t, "e2e-tenant")
	srv := hostRedis(t)
	s := &stratopsv1.Strategy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "iso"},
		Spec: stratopsv1.StrategySpec{
			Mode:   stratopsv1.ModeLive,
			Redis:  &stratopsv1.RedisSpec{Address: srv.Addr, KeyPrefix: "iso:", HealthCheckInterval: &metav1.Duration{Duration: 3 * time.Second}},
			Engine: sampleEngine(),
		},
	}
	if err := k8s.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	if out, err := kubectl("-n", ns, "wait", "--for=condition=Ready", "strategy/iso", "--timeout=180s"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}

	// The engine: its own ServiceAccount, no token.
	engine := runningEnginePod(t, ns, "iso")
	if engine.Spec.ServiceAccountName != "iso-engine" {
		t.Errorf("the engine runs as ServiceAccount %q, want iso-engine", engine.Spec.ServiceAccountName)
	}
	for _, v := range engine.Spec.Volumes {
		if v.Projected != nil {
			for _, src := range v.Projected.Sources {
				if src.ServiceAccountToken != nil {
					t.Errorf("the engine pod mounts an API token (volume %s)", v.Name)
				}
			}
		}
	}
	for _, c := range engine.Spec.Containers {
		for _, m := range c.VolumeMounts {
			if strings.HasPrefix(m.MountPath, "/var/run/secrets/kubernetes.io") {
				t.Errorf("container %s mounts %s", c.Name, m.MountPath)
			}
		}
	}

	// The logger's API needs the token; its health does not.
	loggers, err := strategyPods(ns, "iso", "event-logger")
	if err != nil || len(loggers) == 0 {
		t.Fatalf("the logger pod: %v", err)
	}
	ip := loggers[0].Status.PodIP
	var sec corev1.Secret
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "iso-eventlogger-token"}, &sec); err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	call := func(method, url, token, body string) int {
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	api := fmt.Sprintf("http://%s:8080", ip)
	value := `{"timestamp":"2024-05-12T14:00:00Z","max_position":1}`
	for _, c := range []struct{ method, path, body string }{
		{"PUT", "/state/config:strategy", value}, {"GET", "/state/events:history", ""}, {"POST", "/events", value},
	} {
		if code := call(c.method, api+c.path, "", c.body); code != http.StatusUnauthorized {
			t.Errorf("%s %s without the token: %d, want 401", c.method, c.path, code)
		}
		if code := call(c.method, api+c.path, "not-the-token", c.body); code != http.StatusUnauthorized {
			t.Errorf("%s %s with another token: %d, want 401", c.method, c.path, code)
		}
	}
	if code := call("GET", api+"/state/events:history?count=5", string(sec.Data["token"]), ""); code != http.StatusOK {
		t.Errorf("reading history with the token: %d, want 200", code)
	}
	if code := call("GET", fmt.Sprintf("http://%s:8081/readyz", ip), "", ""); code != http.StatusOK {
		t.Errorf("the health port: %d, want 200", code)
	}

	var np networkingv1.NetworkPolicy
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "iso-eventlogger"}, &np); err != nil {
		t.Fatalf("the logger's NetworkPolicy: %v", err)
	}
	if len(np.Spec.Ingress) == 0 || len(np.Spec.Ingress[0].From) != 1 || np.Spec.Ingress[0].From[0].PodSelector == nil {
		t.Errorf("the API port is not limited to the engine's pods: %+v", np.Spec.Ingress)
	}

	// People: the namespace's editors and viewers, through aggregation.
	for _, sa := range []string{"desk", "auditor"} {
		if out, err := kubectl("-n", ns, "create", "serviceaccount", sa); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	for sa, role := range map[string]string{"desk": "edit", "auditor": "view"} {
		if out, err := kubectl("-n", ns, "create", "rolebinding", sa, "--clusterrole="+role, "--serviceaccount="+ns+":"+sa); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	canI := func(sa, verb, resource string) bool {
		args := []string{"auth", "can-i", verb, resource}
		if r, sub, ok := strings.Cut(resource, "/"); ok {
			args = []string{"auth", "can-i", verb, r, "--subresource=" + sub}
		}
		out, _ := kubectl(append(args, "-n", ns, "--as=system:serviceaccount:"+ns+":"+sa)...)
		return strings.TrimSpace(out) == "yes"
	}
	eventually(t, 30*time.Second, "edit and view carry Strategies", func() error {
		for _, c := range []struct {
			sa, verb, resource string
			want               bool
		}{
			{"desk", "create", "strategies.stratops.dev", true},
			{"desk", "delete", "strategies.stratops.dev", true},
			{"desk", "update", "strategies.stratops.dev/status", false},
			{"auditor", "get", "strategies.stratops.dev", true},
			{"auditor", "watch", "strategies.stratops.dev", true},
			{"auditor", "create", "strategies.stratops.dev", false},
			{"auditor", "get", "secrets", false},
		} {
			if got := canI(c.sa, c.verb, c.resource); got != c.want {
				return fmt.Errorf("%s can-i %s %s = %v, want %v", c.sa, c.verb, c.resource, got, c.want)
			}
		}
		return nil
	})

	// Removing spec.engine stops the engine and deletes it.
	if out, err := kubectl("-n", ns, "patch", "strategy", "iso", "--type=json", `-p=[{"op":"remove","path":"/spec/engine"}]`); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	eventually(t, 90*time.Second, "no engine pod and no engine Deployment", func() error {
		pods, err := strategyPods(ns, "iso", "engine")
		if err != nil {
			return err
		}
		if len(pods) > 0 {
			return fmt.Errorf("%d engine pods", len(pods))
		}
		if d, err := deployment(ns, "iso-engine"); err == nil {
			return fmt.Errorf("Deployment %s still exists (replicas %d)", d.Name, *d.Spec.Replicas)
		}
		return nil
	})
	if ok, err := hasEvent(ns, "iso", corev1.EventTypeWarning, "EngineRemoving"); err != nil || !ok {
		t.Errorf("no EngineRemoving Warning before the removal (%v)", err)
	}
}
