package children

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/pkg/messaging"
)

func live() *stratv1.Strategy {
	return &stratv1.Strategy{
		ObjectMeta: metav1.ObjectMeta{Name: "eth-basis", Namespace: "trading", UID: types.UID("u-1"), Generation: 3},
		Spec: stratv1.StrategySpec{
			Mode: stratv1.ModeLive,
			Redis: &stratv1.RedisSpec{
				Address: "redis.trading.svc:6379", KeyPrefix: "eth-basis:", Username: "trader",
				PasswordSecretRef:   &stratv1.SecretKeySelector{Name: "redis-auth", Key: "password"},
				TLS:                 &stratv1.RedisTLSSpec{Enabled: true, CASecretRef: &stratv1.SecretKeySelector{Name: "redis-ca", Key: "ca.crt"}},
				HealthCheckInterval: &metav1.Duration{Duration: 10 * time.Second},
			},
			Engine: &stratv1.EngineSpec{Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"desk": "a"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "engine", Image: "engine:1",
					Env:       []corev1.EnvVar{{Name: "OWN", Value: "1"}},
					Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m")}},
				}}},
			}},
		},
	}
}

// typed reads an apply configuration as the object the API server would
// store (less its defaults).
func typed[T any](t *testing.T, ac any) *T {
	t.Helper()
	b, err := json.Marshal(ac)
	if err != nil {
		t.Fatal(err)
	}
	out := new(T)
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func env(c corev1.Container) map[string]corev1.EnvVar {
	out := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		out[e.Name] = e
	}
	return out
}

func TestEventLoggerDeployment_IsWiredRestrictedOwnedAndLabelled(t *testing.T) {
	s := live()
	d := typed[appsv1.Deployment](t, EventLoggerDeployment(s, "stratops:1", Revision{Name: "h1", Catalog: "eth-basis-catalog-c1"}, true))
	if d.Name != "eth-basis-eventlogger" || d.Namespace != "trading" || d.Kind != "Deployment" || d.APIVersion != "apps/v1" {
		t.Fatalf("identity %s/%s %s %s", d.Namespace, d.Name, d.APIVersion, d.Kind)
	}
	if len(d.OwnerReferences) != 1 || d.OwnerReferences[0].UID != "u-1" || !*d.OwnerReferences[0].Controller {
		t.Fatalf("owner %+v", d.OwnerReferences)
	}
	if d.Labels[LabelManagedBy] != ManagerName || d.Spec.Template.Labels[LabelComponent] != ComponentEventLogger ||
		d.Annotations[AnnotationStrategyGeneration] != "3" || d.Spec.Template.Annotations[AnnotationRevision] != "h1" {
		t.Fatalf("labels %v, annotations %v / %v", d.Labels, d.Annotations, d.Spec.Template.Annotations)
	}
	for k, v := range d.Spec.Selector.MatchLabels {
		if d.Spec.Template.Labels[k] != v {
			t.Fatalf("the selector does not select the template: %s", k)
		}
	}
	p := d.Spec.Template.Spec
	c := p.Containers[0]
	if !*p.SecurityContext.RunAsNonRoot || *c.SecurityContext.AllowPrivilegeEscalation || !*c.SecurityContext.ReadOnlyRootFilesystem ||
		c.SecurityContext.Capabilities.Drop[0] != "ALL" || *p.AutomountServiceAccountToken {
		t.Fatalf("not restricted: %+v %+v", p.SecurityContext, c.SecurityContext)
	}
	e := env(c)
	if e[messaging.EnvRedisPassword].ValueFrom.SecretKeyRef.Name != "redis-auth" || e[messaging.EnvRedisPassword].Value != "" {
		t.Fatalf("the password must come from the Secret: %+v", e[messaging.EnvRedisPassword])
	}
	if e[messaging.EnvHealthInterval].Value != "10s" || e[messaging.EnvLogLevel].Value != "info" || e[messaging.EnvKeyPrefix].Value != "eth-basis:" {
		t.Fatalf("env %+v", e)
	}
	if _, ok := e["STRATOPS_HTTP_ADDR"]; ok {
		t.Fatal("the listen address is the logger's default, not the operator's")
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	if mounts["catalog"] != "/etc/stratops" || mounts["redis-ca"] != "/etc/stratops/redis-ca" || mounts["tmp"] != "/tmp" {
		t.Fatalf("mounts %v", mounts)
	}
	for _, v := range p.Volumes {
		if v.Name == "redis-ca" && (v.Secret.SecretName != "redis-ca" || v.Secret.Items[0].Key != "ca.crt" || v.Secret.Items[0].Path != "ca.crt") {
			t.Fatalf("CA volume %+v", v.Secret)
		}
		if v.Name == "tmp" && v.EmptyDir == nil {
			t.Fatal("tmp is an emptyDir")
		}
	}
}

func TestEventLoggerDeployment_ABacktestOnMemoryGetsNoRedis(t *testing.T) {
	s := live()
	s.Spec.Mode = stratv1.ModeBacktest
	c := typed[appsv1.Deployment](t, EventLoggerDeployment(s, "stratops:1", Revision{Name: "h", Catalog: "c"}, false)).Spec.Template.Spec.Containers[0]
	for name := range env(c) {
		if strings.HasPrefix(name, "STRATOPS_REDIS_") || name == messaging.EnvKeyPrefix {
			t.Fatalf("%s set for a logger on memory", name)
		}
	}
}

func TestEnginePodTemplate_AddsTheWiringAndKeepsWhatTheUserSet(t *testing.T) {
	s := live()
	tmpl, err := EnginePodTemplate(s, PodEnv(s, true, "eth-basis-catalog-1"), map[string]string{AnnotationRevision: "h2"})
	if err != nil {
		t.Fatal(err)
	}
	d := typed[appsv1.Deployment](t, EngineDeployment(s, tmpl, 1))
	if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Fatal("a Live engine is never two at once: Recreate")
	}
	p := d.Spec.Template
	c := p.Spec.Containers[0]
	if p.Labels["desk"] != "a" || p.Labels[LabelComponent] != ComponentEngine || p.Annotations[AnnotationRevision] != "h2" {
		t.Fatalf("labels %v annotations %v", p.Labels, p.Annotations)
	}
	e := env(c)
	if e["OWN"].Value != "1" || e[messaging.EnvMode].Value != "Live" || c.Env[len(c.Env)-1].Name != "OWN" {
		t.Fatalf("the wiring goes first, the user's own variables last: %+v", c.Env)
	}
	if c.Resources.Limits.Cpu().String() != "500m" {
		t.Fatalf("resources %v", c.Resources)
	}
	// What the user did not set is not claimed; what they set empty stays.
	s.Spec.Engine.Template.Spec.Volumes = []corev1.Volume{
		{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: "info", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{}}},
	}
	tmpl, err = EnginePodTemplate(s, PodEnv(s, true, "eth-basis-catalog-1"), map[string]string{AnnotationRevision: "h2"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(tmpl)
	for _, kept := range []string{`"emptyDir":{}`, `"downwardAPI":{}`} {
		if !strings.Contains(string(b), kept) {
			t.Fatalf("the user's %s was dropped: %s", kept, b)
		}
	}
	for _, noise := range []string{`"creationTimestamp"`, `"resources":{}`, `"securityContext":{}`} {
		if strings.Contains(string(b), noise) {
			t.Fatalf("the template claims %s: %s", noise, b)
		}
	}
	// A backtest Job runs once.
	tmpl, _ = EnginePodTemplate(s, PodEnv(s, false, "eth-basis-catalog-1"), map[string]string{AnnotationRevision: "h3"})
	j := BacktestJob(s, BacktestJobName(s, "0123456789"), tmpl)
	if *j.Name != "eth-basis-bt-01234567" {
		t.Fatalf("job name %s", *j.Name)
	}
	if *j.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyNever || *j.Spec.BackoffLimit != 2 {
		t.Fatalf("job %+v", j.Spec)
	}
}

func TestPodEnv_TheOperatorsAndThePodsRedisAreOne(t *testing.T) {
	s := live()
	got := PodEnv(s, true, "eth-basis-catalog-1")
	if got.Redis == nil || got.Redis.Addrs[0] != "redis.trading.svc:6379" || got.Redis.Password.Name != "redis-auth" || !got.Redis.TLS || got.Redis.CA.Key != "ca.crt" {
		t.Fatalf("pod env %+v", got.Redis)
	}
	cfg, err := RedisEnv(s).Config(func(r messaging.SecretKeyRef) ([]byte, error) { return []byte("v-" + r.Name), nil })
	if err != nil || cfg.Password != "v-redis-auth" || string(cfg.CAPEM) != "v-redis-ca" || cfg.Username != "trader" {
		t.Fatalf("operator config %+v, %v", cfg, err)
	}
	if EventLoggerURL(s) != "http://eth-basis-eventlogger.trading.svc:8080" {
		t.Fatal(EventLoggerURL(s))
	}
}

func TestCatalog_NarrowsTheStandardAndRejectsWhatBreaksIt(t *testing.T) {
	s := live()
	s.Spec.Messaging = &stratv1.MessagingSpec{
		Channels: []stratv1.ChannelSpec{{Name: "position:updated", MaxLag: &metav1.Duration{Duration: time.Second}, MaxInvalidRatio: new(0.0)}, {Name: "hedger:filled"}},
		Keys:     []stratv1.KeySpec{{Name: "position:snapshot", TTL: &metav1.Duration{Duration: 1500 * time.Millisecond}}},
	}
	c, err := Catalog(s)
	if err != nil {
		t.Fatal(err)
	}
	pos, _ := c.Channel("position:updated")
	hedger, _ := c.Channel("hedger:filled")
	if pos.MinSubscribers != 2 || pos.MaxLag.Duration != time.Second || pos.InvalidRatioLimit() != 0 || hedger.MinSubscribers != 1 {
		t.Fatalf("channels %+v", c.Channels)
	}
	if k, _ := c.Key("position:snapshot"); k.TTL.Duration != 1500*time.Millisecond {
		t.Fatalf("a sub-second part of a TTL is kept, not truncated: %s", k.TTL)
	}
	if c.KeyPrefix != "eth-basis:" || c.Mode != messaging.ModeLive {
		t.Fatalf("catalog %+v", c)
	}
	s.Spec.Messaging.Keys = []stratv1.KeySpec{{Name: "events:channel_stats"}}
	if _, err := Catalog(s); err == nil || !strings.Contains(err.Error(), "spec.messaging") {
		t.Fatalf("a reserved key: %v", err)
	}
}

// TestEventLoggerDeployment_ItsOwnSettingsAreWrittenAsBefore pins the
// logger's own settings at the end of its environment, names, values and
// order, as the operator wrote them before they went through one codec:
// a change here rolls every logger, and the CHANGELOG must say so.
func TestEventLoggerDeployment_ItsOwnSettingsAreWrittenAsBefore(t *testing.T) {
	s := live()
	c := typed[appsv1.Deployment](t, EventLoggerDeployment(s, "stratops:1", Revision{Name: "h", Catalog: "c"}, true)).Spec.Template.Spec.Containers[0]
	got := c.Env[len(c.Env)-4:]
	want := []corev1.EnvVar{
		{Name: "STRATOPS_SPOOL_DIR", Value: SpoolMountPath},
		{Name: "STRATOPS_SPOOL_MAX_BYTES", Value: "241591910"}, // 90% of the default 256Mi
		{Name: "STRATOPS_DRAIN_TIMEOUT", Value: "45s"},
		{Name: "STRATOPS_POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.name"}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("the logger's own settings:\n%+v\nwant\n%+v", got, want)
	}
}

// TestBuilders_ReadTheSpecNameNamespaceUIDAndGenerationAlone: the
// controller builds a child's desired state again only when the Strategy's
// UID or generation, or the builder's other arguments, changed (see
// ensureBuilt), so no builder may read the Strategy's labels, annotations,
// status or resourceVersion.
func TestBuilders_ReadTheSpecNameNamespaceUIDAndGenerationAlone(t *testing.T) {
	rev := Revision{Name: "r1", Parts: map[string]string{"own": "a"}, Catalog: "eth-basis-catalog-c1"}
	opts := NetworkPolicyOptions{MetricsCIDRs: []string{"10.0.0.0/24"}}
	built := func(s *stratv1.Strategy) []string {
		tmpl, err := EnginePodTemplate(s, PodEnv(s, true, rev.Catalog), rev.Annotations())
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, ac := range []any{
			EventLoggerServiceAccount(s), EventLoggerService(s), EventLoggerDeployment(s, "logger:1", rev, true),
			EventLoggerDeployment(s, "logger:1", rev, false), EventLoggerNetworkPolicy(s, true, opts),
			EventLoggerPodDisruptionBudget(s), EngineServiceAccount(s), EngineDeployment(s, tmpl, 2),
			EnginePodDisruptionBudget(s), CatalogConfigMap(s, rev.Catalog, []byte("{}")),
		} {
			b, err := json.Marshal(ac)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, string(b))
		}
		return out
	}
	want := built(live())
	other := live()
	other.Labels = map[string]string{"team": "b"}
	other.Annotations = map[string]string{stratv1.AnnotationReconcileRequestedAt: "now", "note": "x"}
	other.ResourceVersion = "999"
	other.Finalizers = []string{"stratops.dev/finalizer"}
	other.Status = stratv1.StrategyStatus{Phase: stratv1.PhaseHalted, ObservedGeneration: 2,
		Conditions: []metav1.Condition{{Type: stratv1.ConditionReady, Status: metav1.ConditionFalse, Reason: "X"}}}
	if got := built(other); !reflect.DeepEqual(got, want) {
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("built from the Strategy's metadata or status beyond its spec, name, namespace, UID and generation:\n%s\nwas\n%s", got[i], want[i])
			}
		}
	}
	// The spec, which the generation counts, does change what is built.
	changed := live()
	changed.Spec.Redis.Address = "redis-2.trading.svc:6379"
	if reflect.DeepEqual(built(changed), want) {
		t.Error("a changed spec built the same children: this test compares nothing")
	}
}
