// Package python_test runs the Python package's tests from `make test`:
// with Debian's /usr/bin/python3 and its redis-py, against a real
// redis-server and the event logger binary run as the operator provisions
// it. It also holds the package's environment reader to the Go one's
// results, and installs the package into a venv as a user would.
package python_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratops/stratops/internal/redisserver"
	"github.com/stratops/stratops/internal/redistest"
	"github.com/stratops/stratops/pkg/messaging"
)

// debianPython is Debian's interpreter, whose redis-py (python3-redis)
// make test installs; another python3 may come first on PATH.
const debianPython = "/usr/bin/python3"

var (
	server *redisserver.Server
	logger string // the event logger binary
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "stratops-python-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	logger = filepath.Join(dir, "eventlogger")
	if out, err := exec.Command("go", "build", "-o", logger, "../../cmd/eventlogger").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the event logger: %v\n%s", err, out)
		os.Exit(1)
	}
	code := redistest.Main(m, &server)
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func needPython(t *testing.T) {
	t.Helper()
	if out, err := exec.Command(debianPython, "-c", "import redis").CombinedOutput(); err != nil {
		t.Fatalf("%s with redis-py is needed (make test installs python3-redis): %v\n%s", debianPython, err, out)
	}
}

// startLogger runs the event logger binary as the operator provisions it:
// the Strategy's environment (mode, Redis or none, the catalog file with
// its key prefix, the API token), its API on a free port. It returns the
// API's URL once the logger is ready.
func startLogger(t *testing.T, mode messaging.Mode, redisAddr, prefix, token string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	cat := messaging.Standard(mode)
	cat.KeyPrefix = prefix
	b, err := cat.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	catFile := filepath.Join(t.TempDir(), messaging.CatalogFileName)
	if err := os.WriteFile(catFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(logger, "--http-addr="+addr, "--health-addr=")
	cmd.Env = append(os.Environ(), messaging.EnvMode+"="+string(mode), messaging.EnvCatalogFile+"="+catFile,
		messaging.EnvKeyPrefix+"="+prefix, messaging.EnvEventLoggerToken+"="+token)
	if redisAddr != "" {
		cmd.Env = append(cmd.Env, messaging.EnvRedisAddrs+"="+redisAddr)
	}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
		if t.Failed() {
			t.Logf("the event logger's output:\n%s", stderr.String())
		}
	})
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get("http://" + addr + "/readyz"); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return "http://" + addr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the event logger never got ready:\n%s", stderr.String())
		}
	}
}

// TestPython_ThePackagesOwnTests runs sdk/python/tests with unittest:
// against the shared redis-server, a Live logger on it and a Backtest
// logger without Redis (which the package forwards to).
func TestPython_ThePackagesOwnTests(t *testing.T) {
	needPython(t)
	const token = "python-test-token"
	prefix := redistest.KeyPrefix(t)
	live := startLogger(t, messaging.ModeLive, server.Addr, prefix, token)
	backtest := startLogger(t, messaging.ModeBacktest, "", "", token)
	cmd := exec.Command(debianPython, "-m", "unittest", "discover", "-s", "tests", "-t", ".", "-v")
	cmd.Env = append(os.Environ(), "STRATOPS_TEST_REDIS_ADDR="+server.Addr, "STRATOPS_TEST_KEY_PREFIX="+prefix,
		"STRATOPS_TEST_LIVE_LOGGER_URL="+live, "STRATOPS_TEST_BACKTEST_LOGGER_URL="+backtest,
		"STRATOPS_TEST_LOGGER_TOKEN="+token, "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	t.Logf("python3 -m unittest:\n%s", out)
	if err != nil {
		t.Fatalf("the Python package's tests failed: %v", err)
	}
	if !bytes.Contains(out, []byte("\nOK")) {
		t.Fatal("unittest did not report OK")
	}
}

// goConfig is Config as the Python package's Config.to_dict() writes it.
func goConfig(c messaging.Config) map[string]any {
	r := c.Redis
	addrs := r.Addrs
	if addrs == nil {
		addrs = []string{}
	}
	return map[string]any{
		"mode": string(c.Mode), "catalogFile": c.CatalogFile, "keyPrefix": c.KeyPrefix,
		"eventLoggerURL": c.EventLoggerURL, "eventLoggerToken": c.EventLoggerToken,
		"healthIntervalNs": c.HealthInterval.Nanoseconds(), "logLevel": c.LogLevel,
		"redis": map[string]any{
			"topology": r.Topology, "addrs": addrs, "masterName": r.MasterName, "db": r.DB,
			"username": r.Username, "password": r.Password, "tls": r.TLS, "caFile": r.CAFile,
			"clientCertFile": r.ClientCertFile, "clientKeyFile": r.ClientKeyFile,
			"serverName": r.ServerName, "insecureSkipVerify": r.InsecureSkipVerify,
			"dialTimeoutNs": r.DialTimeout.Nanoseconds(),
		},
	}
}

// TestPython_ReadsTheEnvironmentAsGoDoes: the same environments, read by
// messaging.ConfigFromEnv and by stratops_messaging.config_from_env, give
// the same configuration, or both refuse them naming the same variables.
func TestPython_ReadsTheEnvironmentAsGoDoes(t *testing.T) {
	needPython(t)
	envs := []map[string]string{
		{},
		{"STRATOPS_MODE": "Live", "STRATOPS_REDIS_ADDRS": "redis.desk.svc:6379", "STRATOPS_KEY_PREFIX": "eth-basis:",
			"STRATOPS_CATALOG_FILE": "/etc/stratops/catalog.json"},
		{"STRATOPS_MODE": "Live", "STRATOPS_REDIS_TOPOLOGY": "Sentinel", "STRATOPS_REDIS_ADDRS": " s1:26379, s2:26379 ,,s3:26379",
			"STRATOPS_REDIS_MASTER_NAME": "mymaster", "STRATOPS_REDIS_DB": "3", "STRATOPS_REDIS_USERNAME": "engine",
			"STRATOPS_REDIS_PASSWORD": " pass with spaces ", "STRATOPS_REDIS_DIAL_TIMEOUT": "1m30.5s"},
		{"STRATOPS_MODE": "Backtest", "STRATOPS_REDIS_TOPOLOGY": "Cluster", "STRATOPS_REDIS_ADDRS": "c1:7000,c2:7001",
			"STRATOPS_REDIS_TLS": "True", "STRATOPS_REDIS_TLS_CA_FILE": "/etc/stratops/redis-ca/ca.crt",
			"STRATOPS_REDIS_TLS_CERT_FILE":   "/etc/stratops/redis-client-cert/tls.crt",
			"STRATOPS_REDIS_TLS_KEY_FILE":    "/etc/stratops/redis-client-key/tls.key",
			"STRATOPS_REDIS_TLS_SERVER_NAME": "redis.internal", "STRATOPS_REDIS_TLS_INSECURE_SKIP_VERIFY": "0",
			"STRATOPS_EVENT_LOGGER_URL": "http://eth-basis-eventlogger.desk.svc:8080", "STRATOPS_EVENT_LOGGER_TOKEN": "tok",
			"STRATOPS_HEALTH_INTERVAL": "10s", "STRATOPS_LOG_LEVEL": "debug"},
		{"STRATOPS_REDIS_DIAL_TIMEOUT": "250ms", "STRATOPS_HEALTH_INTERVAL": "1h2m3s4ms5us6ns"},
		{"STRATOPS_MODE": "Paper"},
		{"STRATOPS_REDIS_DB": "-1", "STRATOPS_REDIS_TLS": "yes"},
		{"STRATOPS_REDIS_DIAL_TIMEOUT": "2", "STRATOPS_HEALTH_INTERVAL": "-5s", "STRATOPS_EVENT_LOGGER_URL": "ftp://x"},
		{"STRATOPS_REDIS_DB": "1_000", "STRATOPS_REDIS_TLS_INSECURE_SKIP_VERIFY": "T"},
	}
	const script = `import json, sys
from stratops_messaging import config_from_env, ConfigError
out = []
for env in json.load(sys.stdin):
    try:
        out.append(config_from_env(env).to_dict())
    except ConfigError as e:
        out.append({"error": str(e)})
print(json.dumps(out))`
	in, _ := json.Marshal(envs)
	cmd := exec.Command(debianPython, "-c", script)
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, stderr.String())
	}
	var py []map[string]any
	if err := json.Unmarshal(raw, &py); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	for i, env := range envs {
		c, err := messaging.ConfigFromEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
		if err != nil {
			pyErr, _ := py[i]["error"].(string)
			if pyErr == "" {
				t.Errorf("env %v: Go refuses it (%v), Python reads %v", env, err, py[i])
				continue
			}
			for name := range env {
				if strings.Contains(err.Error(), name+"=") != strings.Contains(pyErr, name+"=") {
					t.Errorf("env %v: Go and Python disagree on %s:\n  Go:     %v\n  Python: %s", env, name, err, pyErr)
				}
			}
			continue
		}
		// Through JSON, as the Python side's numbers are.
		want, _ := json.Marshal(goConfig(c))
		got, _ := json.Marshal(py[i])
		var w, g any
		_ = json.Unmarshal(want, &w)
		_ = json.Unmarshal(got, &g)
		if fmt.Sprint(w) != fmt.Sprint(g) {
			t.Errorf("env %v:\n  Go:     %s\n  Python: %s", env, want, got)
		}
	}
}

// TestPython_InstallsIntoAVenvWithoutAnIndex: the package installs as a
// user installs it here, with no package index (Debian's pip refuses a
// system install): into a --system-site-packages venv, with pip
// --no-build-isolation --no-index; the installed copy, imported from
// elsewhere, finds its bundled standard catalog.
func TestPython_InstallsIntoAVenvWithoutAnIndex(t *testing.T) {
	needPython(t)
	venv := filepath.Join(t.TempDir(), "venv")
	if out, err := exec.Command(debianPython, "-m", "venv", "--system-site-packages", venv).CombinedOutput(); err != nil {
		t.Fatalf("python3 -m venv (make test installs python3-venv): %v\n%s", err, out)
	}
	src, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	// A copy: pip builds in the source tree, which must stay clean.
	build := filepath.Join(t.TempDir(), "src")
	if out, err := exec.Command("cp", "-r", src, build).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	pip := exec.Command(filepath.Join(venv, "bin", "pip"), "install", "--no-build-isolation", "--no-index", build)
	pip.Env = append(os.Environ(), "PIP_DISABLE_PIP_VERSION_CHECK=1")
	if out, err := pip.CombinedOutput(); err != nil {
		t.Fatalf("pip install --no-build-isolation --no-index: %v\n%s", err, out)
	}
	check := exec.Command(filepath.Join(venv, "bin", "python"), "-c",
		"import stratops_messaging as sm; c = sm.standard('Live'); print(sm.__file__, len(c.channels), len(c.keys))")
	check.Dir = t.TempDir()
	out, err := check.CombinedOutput()
	if err != nil {
		t.Fatalf("importing the installed package: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), filepath.Join(venv, "lib")) || !strings.HasSuffix(strings.TrimSpace(string(out)), " 6 9") {
		t.Fatalf("the installed package: %s; want it under %s with the standard's 6 channels and 9 keys", out, venv)
	}
}

// TestPython_ConnectsToEveryTopology: the package, given the environment
// the operator writes, reaches a real Redis of each kind it names and
// writes there: mutual TLS (the CA and the client certificate from files),
// an ACL user, a db, Sentinel (the master of the set) and Cluster; the key
// it set holds the catalog's TTL.
func TestPython_ConnectsToEveryTopology(t *testing.T) {
	needPython(t)
	pki, err := redisserver.NewPKI(t.TempDir(), "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	tlsSrv, err := redisserver.Start(redisserver.Options{TLS: pki, TLSClientAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tlsSrv.Close)
	acl, err := redisserver.Start(redisserver.Options{Args: []string{"--user", "engine", "on", ">s3cret pass", "~*", "&*", "+@all"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(acl.Close)
	sentinels, err := redisserver.StartSentinelGroup(1, 1, redisserver.MinSentinelDownAfter)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sentinels.Close)
	cluster, err := redisserver.StartCluster(3, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	for _, tc := range []struct {
		name string
		env  map[string]string
	}{
		{"mutual TLS", map[string]string{"STRATOPS_REDIS_ADDRS": tlsSrv.Addr, "STRATOPS_REDIS_TLS": "true",
			"STRATOPS_REDIS_TLS_CA_FILE": pki.CA, "STRATOPS_REDIS_TLS_CERT_FILE": pki.ClientCert, "STRATOPS_REDIS_TLS_KEY_FILE": pki.ClientKey}},
		{"an ACL user and a db", map[string]string{"STRATOPS_REDIS_ADDRS": acl.Addr, "STRATOPS_REDIS_USERNAME": "engine",
			"STRATOPS_REDIS_PASSWORD": "s3cret pass", "STRATOPS_REDIS_DB": "3"}},
		{"Sentinel", map[string]string{"STRATOPS_REDIS_TOPOLOGY": "Sentinel", "STRATOPS_REDIS_ADDRS": strings.Join(sentinels.SentinelAddrs(), ","),
			"STRATOPS_REDIS_MASTER_NAME": redisserver.SentinelMaster}},
		{"Cluster", map[string]string{"STRATOPS_REDIS_TOPOLOGY": "Cluster", "STRATOPS_REDIS_ADDRS": strings.Join(cluster.Addrs(), ",")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := []string{"STRATOPS_MODE=Live", "STRATOPS_KEY_PREFIX=topology:", "PYTHONDONTWRITEBYTECODE=1"}
			for k, v := range tc.env {
				env = append(env, k+"="+v)
			}
			cmd := exec.Command(debianPython, "-c", `import json, stratops_messaging as sm
c = sm.connect(connect_timeout=10)
assert not c.in_memory, "on the in-process bus"
c.publish_state("position:updated", {"trigger": "GAS_FEE_PAID"}, "position:snapshot", {"wallet": {"eth": 12.5}})
st = c.state("position:snapshot")
print(json.dumps({"ttl": st.ttl, "wallet": json.loads(st.value)["wallet"]}))
c.close()`)
			cmd.Env = append(os.Environ(), env...)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			var got struct {
				TTL    float64
				Wallet map[string]float64
			}
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			if got.TTL <= 3590 || got.TTL > 3600 || got.Wallet["eth"] != 12.5 {
				t.Fatalf("position:snapshot read back as %s; want its value with the catalog's 1h TTL", out)
			}
		})
	}
}
