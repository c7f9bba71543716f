package messaging

import (
	"errors"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"
)

// podEnvironment plays the kubelet: each variable as the pod would see it,
// a Secret's key read from secrets, a file as its path.
func podEnvironment(t *testing.T, env []EnvVar, secrets map[SecretKeyRef]string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, e := range env {
		if _, dup := out[e.Name]; dup {
			t.Fatalf("%s is set twice", e.Name)
		}
		switch {
		case e.Secret != nil:
			if e.Value != "" || e.File != nil {
				t.Fatalf("%s is a Secret reference and more", e.Name)
			}
			out[e.Name] = secrets[*e.Secret]
		case e.File != nil:
			if e.Value != e.File.Path {
				t.Fatalf("%s names file %s but holds %q", e.Name, e.File.Path, e.Value)
			}
			out[e.Name] = e.Value
		default:
			out[e.Name] = e.Value
		}
	}
	return out
}

func TestPodEnv_RoundTripsThroughThePodsEnvironment(t *testing.T) {
	password := SecretKeyRef{Name: "redis-auth", Key: "password"}
	ca := SecretKeyRef{Name: "redis-ca", Key: "ca.crt"}
	secrets := map[SecretKeyRef]string{password: " s3cret with spaces ", ca: "-----BEGIN CERTIFICATE-----"}
	full := PodEnv{
		Mode:      ModeLive,
		Catalog:   FileRef{ConfigMap: "eth-basis-catalog", Key: CatalogFileName, Path: CatalogPath},
		KeyPrefix: "eth-basis:",
		Redis: &RedisEnv{
			Topology: "Sentinel", Addrs: []string{"s1:26379", "s2:26379"}, MasterName: "mymaster", DB: 3,
			Username: "trader", Password: &password, TLS: true, CA: &ca, ServerName: "redis.internal",
			InsecureSkipVerify: true, DialTimeout: 1500 * time.Millisecond,
		},
		EventLoggerURL: "http://eth-basis-eventlogger.trading.svc:8080",
		HealthInterval: 30 * time.Second,
		LogLevel:       "debug",
	}
	for name, tc := range map[string]struct {
		in   PodEnv
		want Config
	}{
		"every setting": {full, Config{
			Mode: ModeLive, CatalogFile: CatalogPath, KeyPrefix: "eth-basis:",
			EventLoggerURL: "http://eth-basis-eventlogger.trading.svc:8080", HealthInterval: 30 * time.Second, LogLevel: "debug",
			Redis: RedisConfig{
				Topology: "Sentinel", Addrs: []string{"s1:26379", "s2:26379"}, MasterName: "mymaster", DB: 3,
				Username: "trader", Password: " s3cret with spaces ", TLS: true, CAFile: RedisCAPath, ServerName: "redis.internal",
				InsecureSkipVerify: true, DialTimeout: 1500 * time.Millisecond,
				ReadTimeout: DefaultReadTimeout, WriteTimeout: DefaultWriteTimeout,
			},
		}},
		"a backtest without Redis": {PodEnv{Mode: ModeBacktest, Catalog: full.Catalog}, Config{
			Mode: ModeBacktest, CatalogFile: CatalogPath,
			Redis: RedisConfig{Topology: "Standalone", DialTimeout: DefaultDialTimeout, ReadTimeout: DefaultReadTimeout, WriteTimeout: DefaultWriteTimeout},
		}},
	} {
		t.Run(name, func(t *testing.T) {
			vars := podEnvironment(t, tc.in.Env(), secrets)
			got, err := ConfigFromEnv(func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("read back\n%+v\nwant\n%+v", got, tc.want)
			}
			if tc.in.Redis == nil {
				return
			}
			// The operator resolves the same settings for its own probes.
			op, err := tc.in.Redis.Config(func(r SecretKeyRef) ([]byte, error) { return []byte(secrets[r]), nil })
			if err != nil {
				t.Fatal(err)
			}
			op.CAPEM, op.CAFile = nil, got.Redis.CAFile
			if !reflect.DeepEqual(op, got.Redis) {
				t.Fatalf("the operator's connection\n%+v\ndiffers from the pod's\n%+v", op, got.Redis)
			}
		})
	}
	// The password is never a plain value, and the files are named.
	for _, e := range full.Env() {
		if e.Value == secrets[password] {
			t.Fatalf("%s carries the password as a value", e.Name)
		}
	}
	files := full.Files()
	if len(files) != 2 || files[0].Path != CatalogPath || files[1].Secret != "redis-ca" || files[1].Path != RedisCAPath {
		t.Fatalf("files %+v", files)
	}
}

func TestConfigFromEnv_NamesEveryMalformedVariable(t *testing.T) {
	vars := map[string]string{
		EnvMode: "Paper", EnvRedisDB: "three", EnvRedisTLS: "yes please", EnvRedisDialTimeout: "-1s",
		EnvHealthInterval: "often", EnvEventLoggerURL: "eventlogger:8080",
	}
	_, err := ConfigFromEnv(func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	if err == nil {
		t.Fatal("malformed variables were accepted")
	}
	for name := range vars {
		if !strings.Contains(err.Error(), name+"=") {
			t.Errorf("the error does not name %s: %v", name, err)
		}
	}
}

func TestConnect_LiveWithoutRedisFailsFastBacktestFallsBackToMemory(t *testing.T) {
	ctx := t.Context()
	closed := RedisConfig{Addrs: []string{"127.0.0.1:1"}, DialTimeout: 50 * time.Millisecond}
	for name, cfg := range map[string]Config{
		"live without Redis":     {Mode: ModeLive},
		"live with a dead Redis": {Mode: ModeLive, Redis: closed},
	} {
		if _, err := Connect(ctx, cfg, Options{ConnectTimeout: 300 * time.Millisecond}); !errors.Is(err, ErrRedisRequired) {
			t.Errorf("%s: Connect = %v, want ErrRedisRequired", name, err)
		}
	}
	c, err := Connect(ctx, Config{Mode: ModeBacktest, Redis: closed}, Options{ConnectTimeout: 300 * time.Millisecond})
	if err != nil || !c.InMemory() {
		t.Fatalf("a backtest with a dead Redis: %v (in memory %v)", err, err == nil && c.InMemory())
	}
	_ = c.Close(ctx)
}

// TestPackage_ImportsNoKubernetes keeps the standard a package any
// component can import: none of its dependencies is a Kubernetes package.
func TestPackage_ImportsNoKubernetes(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "k8s.io/") || strings.HasPrefix(dep, "sigs.k8s.io/") {
			t.Errorf("pkg/messaging depends on %s", dep)
		}
		if strings.HasPrefix(dep, "github.com/stratops/stratops/") && dep != "github.com/stratops/stratops/pkg/messaging" {
			t.Errorf("pkg/messaging depends on %s: it imports nothing of ours", dep)
		}
	}
}
