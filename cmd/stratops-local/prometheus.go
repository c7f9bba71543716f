package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/stratops/stratops/internal/localrun"
)

// The identity make run's Prometheus scrapes the manager with: a
// ServiceAccount bound to the metrics-reader ClusterRole, as on a cluster.
const (
	promNamespace      = "stratops-system"
	promServiceAccount = "prometheus"
	promTokenLifetime  = 2 * time.Hour
)

// prometheus is make run's Prometheus server: Debian's prometheus on a
// free port, scraping the manager (HTTPS, with a ServiceAccount token)
// and every event logger, with config/prometheus/rules.yaml loaded.
type prometheus struct {
	dir       string // <run dir>/prometheus
	url       string
	alertsURL string // its alert list: /alerts, or /classic/alerts in Debian's build (the classic UI only)
	cmd       *exec.Cmd
	exited    chan struct{}
	tokenTime time.Time
	targets   string // the loggers' file_sd content last written
}

// freeAddr is a loopback address nothing listens on now.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// grantMetricsReader makes the scraper's ServiceAccount and binds it to
// config/rbac's metrics-reader ClusterRole, named as config/default names it.
func grantMetricsReader(ctx context.Context, c client.Client, root string) error {
	b, err := os.ReadFile(filepath.Join(root, "config", "rbac", "metrics_reader_role.yaml"))
	if err != nil {
		return err
	}
	role := &rbacv1.ClusterRole{}
	if err := yaml.UnmarshalStrict(b, role); err != nil {
		return fmt.Errorf("config/rbac/metrics_reader_role.yaml: %w", err)
	}
	role.Name = "stratops-" + role.Name
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: promNamespace}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: promServiceAccount, Namespace: promNamespace}},
		role,
		&rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "prometheus-stratops-metrics-reader"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: promServiceAccount, Namespace: promNamespace}},
		},
	}
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating %T %s: %w", o, o.GetName(), err)
		}
	}
	return nil
}

// startPrometheus writes the configuration and starts the server. It
// returns nil, and says why, when prometheus is not installed.
func startPrometheus(ctx context.Context, c client.Client, root, runDir, managerMetrics string) (*prometheus, error) {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		say("no prometheus binary (apt-get install prometheus; make run installs it when root): running without Prometheus")
		return nil, nil
	}
	p := &prometheus{dir: filepath.Join(runDir, "prometheus"), exited: make(chan struct{})}
	if err := os.MkdirAll(filepath.Join(p.dir, "data"), 0o755); err != nil {
		return nil, err
	}
	if err := grantMetricsReader(ctx, c, root); err != nil {
		return nil, err
	}
	if err := p.refreshToken(ctx, c); err != nil {
		return nil, err
	}
	if err := p.writeTargets(nil); err != nil {
		return nil, err
	}
	rules, err := filepath.Abs(filepath.Join(root, "config", "prometheus", "rules.yaml"))
	if err != nil {
		return nil, err
	}
	cfg := map[string]any{
		"global":     map[string]any{"scrape_interval": "5s", "evaluation_interval": "5s"},
		"rule_files": []string{rules},
		"scrape_configs": []any{
			map[string]any{
				"job_name": "stratops-manager",
				"scheme":   "https",
				// The manager's certificate is self-signed, as on a cluster
				// without cert-manager.
				"tls_config":     map[string]any{"insecure_skip_verify": true},
				"authorization":  map[string]any{"credentials_file": filepath.Join(p.dir, "token")},
				"static_configs": []any{map[string]any{"targets": []string{managerMetrics}, "labels": map[string]string{"namespace": promNamespace, "pod": "stratops-controller-manager"}}},
			},
			map[string]any{
				"job_name": "stratops-eventlogger",
				// The loggers' series get namespace and strategy labels, as
				// the chart's PodMonitor gives them on a cluster.
				"file_sd_configs": []any{map[string]any{"files": []string{filepath.Join(p.dir, "eventloggers.json")}, "refresh_interval": "5s"}},
			},
		},
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(p.dir, "prometheus.yml"), b, 0o644); err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(runDir, "prometheus.log"))
	if err != nil {
		return nil, err
	}
	p.cmd = exec.Command(bin, "--config.file="+filepath.Join(p.dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(p.dir, "data"), "--storage.tsdb.retention.time=1d",
		"--web.listen-address="+addr, "--web.enable-lifecycle")
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("starting prometheus: %w", err)
	}
	go func() { _ = p.cmd.Wait(); _ = logf.Close(); close(p.exited) }()
	p.url = "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.url + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				p.alertsURL = p.url + "/alerts"
				if r, err := http.Get(p.alertsURL); err == nil {
					_ = r.Body.Close()
					if r.StatusCode == http.StatusNotFound {
						p.alertsURL = p.url + "/classic/alerts"
					}
				}
				return p, nil
			}
		}
		select {
		case <-p.exited:
			return nil, fmt.Errorf("prometheus exited at start: see %s", logf.Name())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, errors.New("prometheus did not become ready in 30s")
		}
	}
}

// refreshToken asks the API server for a token of the scraper's
// ServiceAccount (TokenRequest), written where Prometheus reads it at
// every scrape; renewed well before it expires.
func (p *prometheus) refreshToken(ctx context.Context, c client.Client) error {
	if time.Since(p.tokenTime) < promTokenLifetime/2 {
		return nil
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: promServiceAccount, Namespace: promNamespace}}
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(promTokenLifetime.Seconds()))}}
	if err := c.SubResource("token").Create(ctx, sa, tr); err != nil {
		return fmt.Errorf("requesting the scraper's token: %w", err)
	}
	tmp := filepath.Join(p.dir, "token.tmp")
	if err := os.WriteFile(tmp, []byte(tr.Status.Token), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(p.dir, "token")); err != nil {
		return err
	}
	p.tokenTime = time.Now()
	return nil
}

// writeTargets writes the loggers' scrape targets (file_sd), labelled
// with their Strategy's namespace and name, from the local kubelet's
// processes (key: namespace/<strategy>-eventlogger; value: pid, port).
func (p *prometheus) writeTargets(procs map[string][2]int) error {
	type group struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels"`
	}
	groups := []group{}
	keys := make([]string, 0, len(procs))
	for k := range procs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ns, deploy, ok := strings.Cut(k, "/")
		if !ok {
			continue
		}
		groups = append(groups, group{
			Targets: []string{"127.0.0.1:" + strconv.Itoa(procs[k][1])},
			Labels:  map[string]string{"namespace": ns, "strategy": strings.TrimSuffix(deploy, "-eventlogger"), "pod": deploy},
		})
	}
	b, err := json.MarshalIndent(groups, "", "  ")
	if err != nil {
		return err
	}
	if string(b) == p.targets {
		return nil
	}
	tmp := filepath.Join(p.dir, "eventloggers.json.tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(p.dir, "eventloggers.json")); err != nil {
		return err
	}
	p.targets = string(b)
	return nil
}

// stop ends the server and waits for it.
func (p *prometheus) stop() {
	if p == nil || p.cmd == nil || p.cmd.Process == nil {
		return
	}
	localrun.Stop(p.cmd.Process, p.exited, 20*time.Second)
}
