//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	stratopsv1 "github.com/stratops/stratops/api/v1"

	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestManagerRBAC asks the API server what the manager's ServiceAccount may
// do: what the README's permission table lists, and nothing more.
func TestManagerRBAC(t *testing.T) {
	timed(t)
	as := "--as=system:serviceaccount:" + operatorNS + ":" + managerSA
	canI := func(verb, resource, ns string) bool {
		var args []string
		if r, sub, ok := strings.Cut(resource, "/"); ok {
			args = []string{"auth", "can-i", verb, r, "--subresource=" + sub, as}
		} else {
			args = []string{"auth", "can-i", verb, resource, as}
		}
		if ns == "" {
			args = append(args, "--all-namespaces")
		} else {
			args = append(args, "-n", ns)
		}
		out, _ := kubectl(args...)
		return strings.TrimSpace(out) == "yes"
	}
	allowed := map[string][]string{
		"strategies.stratops.dev":           {"get", "list", "watch"},
		"strategies.stratops.dev/status":    {"get", "update", "patch"},
		"configmaps":                        {"get", "list", "watch", "create", "patch", "delete"},
		"replicasets.apps":                  {"get", "list"},
		"services":                          {"get", "list", "watch", "create", "patch"},
		"serviceaccounts":                   {"get", "list", "watch", "create", "patch"},
		"deployments.apps":                  {"get", "list", "watch", "create", "patch", "delete"},
		"jobs.batch":                        {"get", "list", "watch", "create", "delete"},
		"poddisruptionbudgets.policy":       {"get", "list", "watch", "create", "patch", "delete"},
		"secrets":                           {"get", "list", "watch", "create"},
		"networkpolicies.networking.k8s.io": {"get", "list", "watch", "create", "patch"},
		"events.events.k8s.io":              {"create", "patch"},
		// A backtest's refused pod is said only in the Job's events.
		"events": {"list"},
		// A namespace's Pod Security labels judge its engines.
		"namespaces": {"get", "list", "watch"},
		// The metrics' authentication and authorization.
		"tokenreviews.authentication.k8s.io":        {"create"},
		"subjectaccessreviews.authorization.k8s.io": {"create"},
	}
	all := []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}
	for resource, verbs := range allowed {
		for _, verb := range all {
			want := contains(verbs, verb)
			if got := canI(verb, resource, ""); got != want {
				t.Errorf("can-i %s %s (all namespaces) = %v, want %v", verb, resource, got, want)
			}
		}
	}
	// Leader election: leases in its own namespace only.
	for _, verb := range []string{"get", "create", "update", "patch", "delete"} {
		if !canI(verb, "leases.coordination.k8s.io", operatorNS) {
			t.Errorf("cannot %s leases in %s", verb, operatorNS)
		}
		if canI(verb, "leases.coordination.k8s.io", "default") {
			t.Errorf("can %s leases outside %s", verb, operatorNS)
		}
	}
	// Nothing the table does not list.
	for _, r := range []string{"pods", "pods/exec", "nodes", "roles.rbac.authorization.k8s.io",
		"clusterroles.rbac.authorization.k8s.io", "rolebindings.rbac.authorization.k8s.io",
		"customresourcedefinitions.apiextensions.k8s.io", "statefulsets.apps", "daemonsets.apps", "cronjobs.batch",
		"persistentvolumeclaims", "serviceaccounts/token", "*"} {
		for _, verb := range []string{"get", "list", "create", "update", "delete", "*"} {
			if canI(verb, r, "") {
				t.Errorf("can %s %s, which the README does not list", verb, r)
			}
		}
	}
	// And no wildcard anywhere in the roles it is bound to.
	var crs rbacv1.ClusterRoleList
	if err := k8s.List(context.Background(), &crs); err != nil {
		t.Fatal(err)
	}
	for _, cr := range crs.Items {
		if !strings.HasPrefix(cr.Name, "stratops-") {
			continue
		}
		for _, rule := range cr.Rules {
			if contains(rule.Verbs, "*") || contains(rule.Resources, "*") || contains(rule.APIGroups, "*") {
				t.Errorf("ClusterRole %s has a wildcard rule: %+v", cr.Name, rule)
			}
		}
	}
	out, err := kubectl("auth", "can-i", "--list", as, "-n", operatorNS)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kubectl auth can-i --list %s -n %s:\n%s", as, operatorNS, out)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestPodsRunAsNonRootReadOnly checks, on the node, the processes of the
// manager, an event logger and an engine: the uid the kernel runs them as
// (the image's USER 65532; the pods only say runAsNonRoot), no effective
// capabilities, a read-only root filesystem, and no default route (pods
// reach only the bridge and the Service range).
func TestPodsRunAsNonRootReadOnly(t *testing.T) {
	timed(t)
	ctx := context.Background()
	rs, closeFn, err := kc.RuntimeClient()
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	var pods corev1.PodList
	if err := k8s.List(ctx, &pods); err != nil {
		t.Fatal(err)
	}
	checked := map[string]int{}
	for _, p := range pods.Items {
		component := p.Labels["app.kubernetes.io/component"]
		if p.Labels["app.kubernetes.io/name"] != "stratops" && p.Labels["app.kubernetes.io/managed-by"] != "stratops" {
			continue
		}
		if p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
			continue
		}
		for _, cs := range p.Status.ContainerStatuses {
			if !cs.Ready || cs.ContainerID == "" {
				continue
			}
			id := strings.TrimPrefix(cs.ContainerID, "containerd://")
			st, err := rs.ContainerStatus(ctx, &cri.ContainerStatusRequest{ContainerId: id, Verbose: true})
			if err != nil {
				t.Fatalf("%s/%s: %v", p.Namespace, p.Name, err)
			}
			pid, err := pidOf(st.Info["info"])
			if err != nil {
				t.Fatalf("%s/%s: %v", p.Namespace, p.Name, err)
			}
			uids, err := procField(pid, "Uid:")
			if err != nil {
				t.Fatal(err)
			}
			if uids != "65532 65532 65532 65532" {
				t.Errorf("%s/%s container %s runs as uids %q, want 65532 (nonroot)", p.Namespace, p.Name, cs.Name, uids)
			}
			caps, err := procField(pid, "CapEff:")
			if err != nil {
				t.Fatal(err)
			}
			if caps != "0000000000000000" {
				t.Errorf("%s/%s container %s has effective capabilities %s, want none", p.Namespace, p.Name, cs.Name, caps)
			}
			ro, err := rootReadOnly(pid)
			if err != nil {
				t.Fatal(err)
			}
			if !ro {
				t.Errorf("%s/%s container %s: root filesystem is writable", p.Namespace, p.Name, cs.Name)
			}
			// No route off the machine: only the bridge and the Service
			// range, no default route.
			routes, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/route", pid))
			if err != nil {
				t.Fatal(err)
			}
			serviceRoute := false
			for _, line := range strings.Split(string(routes), "\n")[1:] {
				f := strings.Fields(line)
				if len(f) > 1 && f[1] == "00000000" {
					t.Errorf("%s/%s has a default route: %s", p.Namespace, p.Name, line)
				}
				// 10.96.0.0, little-endian hex: the Service range.
				serviceRoute = serviceRoute || (len(f) > 1 && f[1] == "0000600A")
			}
			if !serviceRoute {
				t.Errorf("%s/%s has no route to the Service range; its routes:\n%s", p.Namespace, p.Name, routes)
			}
			checked[component]++
		}
	}
	t.Logf("checked containers by component: %v", checked)
	for _, c := range []string{"manager", "event-logger", "engine"} {
		if checked[c] == 0 {
			t.Errorf("no running %s container to check", c)
		}
	}
}

// pidOf reads the pid from the runtime's verbose container info (JSON).
func pidOf(info string) (int, error) {
	var v struct {
		Pid int `json:"pid"`
	}
	if err := json.Unmarshal([]byte(info), &v); err != nil {
		return 0, fmt.Errorf("reading the runtime's container info: %w", err)
	}
	if v.Pid <= 0 {
		return 0, fmt.Errorf("no pid in the runtime's container info")
	}
	return v.Pid, nil
}

func procField(pid int, field string) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			return strings.Join(strings.Fields(v), " "), nil
		}
	}
	return "", fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// rootReadOnly reads the process's own view of "/" from its mountinfo.
func rootReadOnly(pid int) (bool, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		return false, err
	}
	// The last mount on "/" is the one the process sees.
	var opts string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 5 && f[4] == "/" {
			opts = f[5]
		}
	}
	if opts != "" {
		return contains(strings.Split(opts, ","), "ro"), nil
	}
	return false, fmt.Errorf("no root mount in /proc/%d/mountinfo", pid)
}

// TestEngineTemplatePolicy: the admission policy that stratops.yaml installs
// refuses, on the real cluster, an engine that asks for the node's
// network, naming the field, and lets an ordinary engine in.
func TestEngineTemplatePolicy(t *testing.T) {
	timed(t)
	ctx := context.Background()
	ns := namespace(t, "e2e-policy")
	s := &stratopsv1.Strategy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hostnet"},
		Spec:       stratopsv1.StrategySpec{Mode: stratopsv1.ModeBacktest, Engine: sampleEngine()},
	}
	s.Spec.Engine.Template.Spec.HostNetwork = true
	err := k8s.Create(ctx, s)
	if err == nil || !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.engine.template.spec.hostNetwork: host namespaces are not permitted") {
		t.Fatalf("an engine on the host network: %v, want 422 naming spec.engine.template.spec.hostNetwork", err)
	}
	s.Spec.Engine.Template.Spec.HostNetwork = false
	if err := k8s.Create(ctx, s); err != nil {
		t.Fatalf("an ordinary engine is refused: %v", err)
	}
}

// TestManagerMetricsNeedAuthentication: the manager's metrics name every
// tenant's Strategies, so they are served over HTTPS to clients whose
// token the API server vouches for and who may get /metrics (the
// metrics-reader ClusterRole), and to no one else.
func TestManagerMetricsNeedAuthentication(t *testing.T) {
	timed(t)
	ip, err := kubectl("-n", operatorNS, "get", "pod", leaderPod(t), "-o", "jsonpath={.status.podIP}")
	if err != nil || ip == "" {
		t.Fatalf("the manager pod's IP: %q %v", ip, err)
	}
	url := "https://" + strings.TrimSpace(ip) + ":8443/metrics"
	// The manager's certificate is its own self-signed one.
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // the test checks who may read, not the certificate
	get := func(token string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get(""); code != http.StatusUnauthorized {
		t.Fatalf("without a token: %d, want 401", code)
	}
	ns := namespace(t, "e2e-metrics")
	for _, args := range [][]string{
		{"-n", ns, "create", "serviceaccount", "scraper"},
		{"-n", ns, "create", "serviceaccount", "nosy"},
		{"create", "clusterrolebinding", "e2e-scraper-metrics", "--clusterrole=stratops-metrics-reader", "--serviceaccount=" + ns + ":scraper"},
	} {
		if out, err := kubectl(args...); err != nil {
			t.Fatalf("kubectl %v: %v\n%s", args, err, out)
		}
	}
	t.Cleanup(func() { _, _ = kubectl("delete", "clusterrolebinding", "e2e-scraper-metrics") })
	token := func(sa string) string {
		out, err := kubectl("-n", ns, "create", "token", sa)
		if err != nil {
			t.Fatalf("a token for %s: %v", sa, err)
		}
		return strings.TrimSpace(out)
	}
	if code, _ := get(token("nosy")); code != http.StatusForbidden {
		t.Fatalf("with a token not allowed to get /metrics: %d, want 403", code)
	}
	eventually(t, 30*time.Second, "the scraper reads the metrics", func() error {
		code, body := get(token("scraper"))
		if code != http.StatusOK || !strings.Contains(body, "stratops_redis_clients_open") {
			return fmt.Errorf("with the metrics-reader's token: %d", code)
		}
		return nil
	})
}
