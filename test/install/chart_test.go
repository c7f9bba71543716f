package install

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

const chartDir = "charts/stratops"

// nonDefault turns on every toggle and sets every value the chart takes.
var nonDefault = []string{
	"--set", "image.repository=registry.example/stratops,image.tag=1.2.3,image.pullPolicy=Always",
	"--set", "replicaCount=3,logLevel=debug,maxConcurrentReconciles=8,statusRefreshInterval=1m",
	"--set", "allowedRedisAddresses={*.redis.svc.cluster.local,10.20.0.0/16}",
	"--set", "eventLogger.image=registry.example/eventlogger:1.2.3,eventLogger.metricsCIDRs={10.0.0.0/24},eventLogger.metricsNamespaceLabel=team=monitoring",
	"--set", "resources.requests.cpu=200m,resources.limits.memory=1Gi",
	"--set", "metrics.serviceMonitor.enabled=true,metrics.podMonitor.enabled=true,prometheusRule.enabled=true,grafanaDashboard.enabled=true",
	"--set", "metrics.serviceMonitor.metricsReaderSubjects[0].name=prometheus-k8s,metrics.serviceMonitor.metricsReaderSubjects[0].namespace=monitoring",
	"--set", "networkPolicy.enabled=true,crds.keep=false,rbac.aggregatedRoles=false",
	"--set", "podAnnotations.team=desk,nodeSelector.pool=operators",
}

func helmTemplate(t *testing.T, release, namespace string, args ...string) ([]*unstructured.Unstructured, error) {
	t.Helper()
	out, err := run(t, tool(t, "HELM"), append([]string{"template", release, chartDir, "--namespace", namespace}, args...)...)
	if err != nil {
		return nil, err
	}
	return decodeObjects(t, out), nil
}

func find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && (name == "" || o.GetName() == name) {
			return o
		}
	}
	return nil
}

func TestChart_Lint(t *testing.T) {
	for name, args := range map[string][]string{"default": nil, "non-default": nonDefault} {
		t.Run(name, func(t *testing.T) {
			out, err := run(t, tool(t, "HELM"), append([]string{"lint", "--strict", chartDir}, args...)...)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		})
	}
}

// comparable is an object as config/ and the chart must agree on it:
// everything but the labels and annotations each tool adds of its own
// (Helm's chart, instance, version and managed-by; kustomize's
// managed-by), keeping the labels that carry meaning (RBAC aggregation).
func comparable(o *unstructured.Unstructured) string {
	c := o.DeepCopy()
	labels := map[string]string{}
	for k, v := range c.GetLabels() {
		if strings.HasPrefix(k, "rbac.authorization.k8s.io/") {
			labels[k] = v
		}
	}
	c.SetLabels(labels)
	annotations := c.GetAnnotations()
	delete(annotations, "helm.sh/resource-policy")
	c.SetAnnotations(annotations)
	b, err := json.MarshalIndent(c.Object, "", "  ")
	if err != nil {
		panic(err)
	}
	return string(b)
}

func key(o *unstructured.Unstructured) string {
	return fmt.Sprintf("%s %s/%s", o.GetKind(), o.GetNamespace(), o.GetName())
}

// TestChart_DefaultsRenderWhatKustomizeBuilds: with its defaults, the
// chart installs exactly what config/default and config/policy do (but
// the Namespace, which helm install --create-namespace makes): a change to
// config/ that the chart does not follow, or the other way round, fails.
func TestChart_DefaultsRenderWhatKustomizeBuilds(t *testing.T) {
	// helm test's objects are the chart's alone (release_test checks them).
	rendered, err := helmTemplate(t, "stratops", "stratops-system", "--skip-tests")
	if err != nil {
		t.Fatal(err)
	}
	var built []*unstructured.Unstructured
	for _, dir := range []string{"config/default", "config/policy"} {
		out, err := run(t, tool(t, "KUSTOMIZE"), "build", dir)
		if err != nil {
			t.Fatal(err)
		}
		built = append(built, decodeObjects(t, out)...)
	}
	want := map[string]string{}
	for _, o := range built {
		if o.GetKind() == "Namespace" {
			continue
		}
		want[key(o)] = comparable(o)
	}
	got := map[string]string{}
	for _, o := range rendered {
		got[key(o)] = comparable(o)
	}
	var keys []string
	for k := range want {
		keys = append(keys, k)
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch w, g := want[k], got[k]; {
		case g == "":
			t.Errorf("%s: in config/ but not rendered by the chart", k)
		case w == "":
			t.Errorf("%s: rendered by the chart but not in config/", k)
		case w != g:
			t.Errorf("%s differs (lines only config/ has, then lines only the chart has):\n%s", k, lineDiff(w, g))
		}
	}
	if len(want) < 12 {
		t.Fatalf("kustomize built only %d objects", len(want))
	}
}

// lineDiff lists the lines of a that b lacks (-) and of b that a lacks (+).
func lineDiff(a, b string) string {
	count := func(s string) map[string]int {
		m := map[string]int{}
		for _, l := range strings.Split(s, "\n") {
			m[strings.TrimSpace(l)]++
		}
		return m
	}
	ca, cb := count(a), count(b)
	var out []string
	for _, l := range strings.Split(a, "\n") {
		if l = strings.TrimSpace(l); ca[l] > cb[l] {
			out = append(out, "- "+l)
			ca[l]--
		}
	}
	ca = count(a)
	for _, l := range strings.Split(b, "\n") {
		if l = strings.TrimSpace(l); cb[l] > ca[l] {
			out = append(out, "+ "+l)
			cb[l]--
		}
	}
	return strings.Join(out, "\n")
}

// TestChart_RenderedManifestsApply: the rendered manifests, with the
// defaults and with every value set, pass a server-side dry run against a
// real kube-apiserver (strict field validation, the CRDs' schemas, the
// Prometheus Operator's own CRDs for the ServiceMonitor, PodMonitor and
// PrometheusRule).
func TestChart_RenderedManifestsApply(t *testing.T) {
	api := startAPIServer(t)
	for name, args := range map[string][]string{"default": nil, "non-default": nonDefault} {
		t.Run(name, func(t *testing.T) {
			ns := "stratops-" + name
			api.ensureNamespace(t, ns)
			objs, err := helmTemplate(t, "stratops", ns, args...)
			if err != nil {
				t.Fatal(err)
			}
			kinds := map[string]bool{}
			for _, o := range objs {
				kinds[o.GetKind()] = true
				if err := api.dryRunApply(o); err != nil {
					t.Errorf("%s: %v", key(o), err)
				}
			}
			want := []string{"CustomResourceDefinition", "Deployment", "Service", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
			if name == "non-default" {
				want = append(want, "ServiceMonitor", "PodMonitor", "PrometheusRule", "NetworkPolicy", "ConfigMap")
			}
			for _, k := range want {
				if !kinds[k] {
					t.Errorf("no %s rendered", k)
				}
			}
		})
	}
}

// TestChart_ValuesTakeEffect: each value reaches the object it is for.
func TestChart_ValuesTakeEffect(t *testing.T) {
	objs, err := helmTemplate(t, "prod", "trading", nonDefault...)
	if err != nil {
		t.Fatal(err)
	}
	d := find(objs, "Deployment", "prod-stratops-controller-manager")
	if d == nil {
		t.Fatal("no Deployment prod-stratops-controller-manager")
	}
	b, _ := json.Marshal(d.Object)
	s := string(b)
	for _, want := range []string{
		`"replicas":3`, `"image":"registry.example/stratops:1.2.3"`, `"imagePullPolicy":"Always"`,
		`"--leader-elect"`, `"--zap-log-level=debug"`, `"--max-concurrent-reconciles=8"`, `"--status-refresh-interval=1m"`,
		`"--allowed-redis-addresses=*.redis.svc.cluster.local,10.20.0.0/16"`,
		`"--eventlogger-metrics-cidrs=10.0.0.0/24"`, `"--eventlogger-metrics-namespace-label=team=monitoring"`,
		`"value":"registry.example/eventlogger:1.2.3"`, `"cpu":"200m"`, `"memory":"1Gi"`,
		`"team":"desk"`, `"pool":"operators"`, `"serviceAccountName":"prod-stratops-controller-manager"`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("the Deployment lacks %s", want)
		}
	}
	if crd := find(objs, "CustomResourceDefinition", ""); crd == nil || crd.GetAnnotations()["helm.sh/resource-policy"] != "" {
		t.Error("crds.keep=false still keeps the CRD")
	}
	if find(objs, "ClusterRole", "prod-stratops-strategy-editor") != nil {
		t.Error("rbac.aggregatedRoles=false still renders the aggregated roles")
	}
	if b := find(objs, "ClusterRoleBinding", "prod-stratops-metrics-reader"); b == nil {
		t.Error("metricsReaderSubjects bound no one to the metrics-reader role")
	}

	// The PrometheusRule holds config/prometheus/rules.yaml's groups as
	// they are: Helm must not have read their {{ $labels }} as its own.
	rule := find(objs, "PrometheusRule", "")
	src, err := os.ReadFile(filepath.Join(repoRoot(t), "config", "prometheus", "rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]any
	if err := yaml.Unmarshal(src, &want); err != nil {
		t.Fatal(err)
	}
	wantJSON, _ := json.Marshal(want["groups"])
	gotJSON, _ := json.Marshal(rule.Object["spec"].(map[string]any)["groups"])
	if string(wantJSON) != string(gotJSON) {
		t.Errorf("the PrometheusRule's groups differ from config/prometheus/rules.yaml:\n%s\n%s", gotJSON, wantJSON)
	}
	if !strings.Contains(string(gotJSON), "{{ $labels.strategy }}") {
		t.Error("the rules lost their templates")
	}
	cm := find(objs, "ConfigMap", "prod-stratops-grafana-dashboard")
	if cm == nil || cm.GetLabels()["grafana_dashboard"] != "1" {
		t.Fatal("no dashboard ConfigMap for Grafana's sidecar")
	}
	data, _, _ := unstructured.NestedString(cm.Object, "data", "stratops.json")
	dash, err := os.ReadFile(filepath.Join(repoRoot(t), "config", "grafana", "stratops.json"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(data) != strings.TrimSpace(string(dash)) {
		t.Error("the dashboard ConfigMap differs from config/grafana/stratops.json")
	}
}

// TestChart_SchemaRejectsWrongValues: values.schema.json refuses values
// of the wrong type or shape, naming the field, before anything renders.
func TestChart_SchemaRejectsWrongValues(t *testing.T) {
	for _, c := range []struct {
		args  []string
		field string
	}{
		{[]string{"--set", "replicaCount=two"}, "/replicaCount"},
		{[]string{"--set-string", "leaderElection.enabled=yes"}, "/leaderElection/enabled"},
		{[]string{"--set", "allowedRedisAddresses=10.0.0.0/8"}, "/allowedRedisAddresses"},
		{[]string{"--set", "logLevel=verbose"}, "/logLevel"},
		{[]string{"--set", "image.pullPolicy=Sometimes"}, "/image/pullPolicy"},
		{[]string{"--set", "replicas=3"}, "replicas"},
		{[]string{"--set", "metrics.serviceMonitor.enabled=1"}, "/metrics/serviceMonitor/enabled"},
		{[]string{"--set", "statusRefreshInterval=soon"}, "/statusRefreshInterval"},
		{[]string{"--set", "eventLogger.metricsNamespaceLabel=monitoring"}, "/eventLogger/metricsNamespaceLabel"},
	} {
		_, err := helmTemplate(t, "stratops", "stratops-system", c.args...)
		if err == nil {
			t.Errorf("%v: rendered", c.args)
			continue
		}
		if !strings.Contains(err.Error(), "schema") || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%v: the error does not name %s as the schema's: %v", c.args, c.field, err)
		}
	}
	// Two managers without leader election would both reconcile.
	_, err := helmTemplate(t, "stratops", "stratops-system", "--set", "leaderElection.enabled=false")
	if err == nil || !strings.Contains(err.Error(), "leaderElection.enabled") {
		t.Errorf("two replicas without leader election: %v", err)
	}
	if _, err := helmTemplate(t, "stratops", "stratops-system", "--set", "leaderElection.enabled=false,replicaCount=1"); err != nil {
		t.Errorf("one replica without leader election: %v", err)
	}
}

// TestChart_MetricsWithoutWorkarounds: the ServiceMonitor sends the token
// of a ServiceAccount the chart binds to the metrics-reader role, from its
// Secret (no bearerTokenFile); with metrics.certManager the manager is
// given cert-manager's certificate (mounted, --metrics-cert-path) and the
// ServiceMonitor verifies it against the Secret's CA, for the Service's
// name, from a self-signed Issuer or the issuer named.
func TestChart_MetricsWithoutWorkarounds(t *testing.T) {
	for name, args := range map[string][]string{
		"self-signed":  {"--set", "metrics.serviceMonitor.enabled=true"},
		"cert-manager": {"--set", "metrics.serviceMonitor.enabled=true,metrics.certManager.enabled=true"},
		"named issuer": {"--set", "metrics.serviceMonitor.enabled=true,metrics.certManager.enabled=true,metrics.certManager.issuerRef.name=ca,metrics.certManager.issuerRef.kind=ClusterIssuer"},
	} {
		t.Run(name, func(t *testing.T) {
			objs, err := helmTemplate(t, "prod", "ops", args...)
			if err != nil {
				t.Fatal(err)
			}
			sm := find(objs, "ServiceMonitor", "")
			if sm == nil {
				t.Fatal("no ServiceMonitor")
			}
			eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
			ep := eps[0].(map[string]any)
			if _, has := ep["bearerTokenFile"]; has {
				t.Error("the ServiceMonitor still uses bearerTokenFile")
			}
			secret, _, _ := unstructured.NestedString(ep, "authorization", "credentials", "name")
			if tok := find(objs, "Secret", secret); tok == nil || tok.Object["type"] != "kubernetes.io/service-account-token" {
				t.Fatalf("the ServiceMonitor's credentials name Secret %q, which the chart does not make as a ServiceAccount token", secret)
			} else {
				sa := tok.GetAnnotations()["kubernetes.io/service-account.name"]
				b := find(objs, "ClusterRoleBinding", sa)
				if find(objs, "ServiceAccount", sa) == nil || b == nil {
					t.Fatalf("the token's ServiceAccount %q or its binding is not rendered", sa)
				}
				if ref, _, _ := unstructured.NestedString(b.Object, "roleRef", "name"); ref != "prod-stratops-metrics-reader" {
					t.Errorf("the scraper is bound to %s", ref)
				}
			}
			skip, _, _ := unstructured.NestedBool(ep, "tlsConfig", "insecureSkipVerify")
			caSecret, _, _ := unstructured.NestedString(ep, "tlsConfig", "ca", "secret", "name")
			serverName, _, _ := unstructured.NestedString(ep, "tlsConfig", "serverName")
			d, _ := json.Marshal(find(objs, "Deployment", "prod-stratops-controller-manager").Object)
			cert := find(objs, "Certificate", "")
			if name == "self-signed" {
				if !skip || cert != nil || strings.Contains(string(d), "--metrics-cert-path") {
					t.Errorf("without cert-manager: insecureSkipVerify %v, Certificate %v, deployment %s", skip, cert != nil, d)
				}
				return
			}
			if skip || caSecret != "prod-stratops-metrics-cert" || serverName != "prod-stratops-controller-manager-metrics.ops.svc" {
				t.Errorf("the ServiceMonitor does not verify the certificate: insecureSkipVerify %v, CA Secret %q, serverName %q", skip, caSecret, serverName)
			}
			if cert == nil {
				t.Fatal("no Certificate")
			}
			secretName, _, _ := unstructured.NestedString(cert.Object, "spec", "secretName")
			dns, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
			issuer, _, _ := unstructured.NestedString(cert.Object, "spec", "issuerRef", "name")
			if secretName != caSecret || len(dns) == 0 || dns[0] != serverName {
				t.Errorf("the Certificate: Secret %q, names %v", secretName, dns)
			}
			for _, want := range []string{`"--metrics-cert-path=/etc/stratops/metrics-cert"`, `"secretName":"prod-stratops-metrics-cert"`, `"mountPath":"/etc/stratops/metrics-cert"`} {
				if !strings.Contains(string(d), want) {
					t.Errorf("the Deployment lacks %s", want)
				}
			}
			switch ss := find(objs, "Issuer", ""); name {
			case "cert-manager":
				if ss == nil || issuer != ss.GetName() {
					t.Errorf("no self-signed Issuer for the Certificate (issuerRef %q)", issuer)
				}
			case "named issuer":
				if ss != nil || issuer != "ca" {
					t.Errorf("the named issuer is not used (issuerRef %q, self-signed Issuer rendered %v)", issuer, ss != nil)
				}
			}
		})
	}
}

// TestChart_EveryValueIsDescribed: every value the schema knows has a
// description (helm show values, editors and ArtifactHub show them).
func TestChart_EveryValueIsDescribed(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), chartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	var walk func(path string, s map[string]any)
	walk = func(path string, s map[string]any) {
		props, _ := s["properties"].(map[string]any)
		for name, p := range props {
			ps, _ := p.(map[string]any)
			child := strings.TrimPrefix(path+"."+name, ".")
			if d, _ := ps["description"].(string); d == "" {
				t.Errorf("value %s has no description", child)
			}
			walk(child, ps)
		}
		if items, ok := s["items"].(map[string]any); ok {
			walk(path+"[]", items)
		}
	}
	walk("", schema)
}
