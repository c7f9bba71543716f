package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stratv1 "github.com/stratops/stratops/api/v1"
)

// TestLocalRun_SamplesRunRedisOutageHaltsAndRecoversAndCtrlCLeavesNothing
// runs `make run`'s program as a user would and checks what the README
// promises: both samples Running with their channel and key summaries
// filled in, the Live sample leaving Running when Redis stops and coming
// back when it returns, and SIGTERM stopping every process it started and
// freeing every port.
func TestLocalRun_SamplesRunRedisOutageHaltsAndRecoversAndCtrlCLeavesNothing(t *testing.T) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run the tests with `make test`")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "stratops-local")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "--root", "../..", "--dir", dir, "--table-interval", "0")
	cmd.Dir = "."
	out, _ := os.Create(filepath.Join(dir, "out.log"))
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case err := <-exited:
				t.Logf("stratops-local exited: %v", err)
			case <-time.After(60 * time.Second):
				_ = cmd.Process.Kill()
			}
		}
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "out.log"))
			t.Logf("stratops-local output:\n%s", b)
		}
	}()

	var st State
	wait(t, "state.json", 3*time.Minute, exited, func() bool {
		b, err := os.ReadFile(filepath.Join(dir, "state.json"))
		return err == nil && json.Unmarshal(b, &st) == nil && st.Kubeconfig != ""
	})
	cfg, err := clientcmd.BuildConfigFromFlags("", st.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	scheme := runtime.NewScheme()
	_ = stratv1.AddToScheme(scheme)
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	get := func(name string) *stratv1.Strategy {
		s := &stratv1.Strategy{}
		if err := c.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: name}, s); err != nil {
			return &stratv1.Strategy{}
		}
		return s
	}
	healthy := func(name string) bool {
		s := get(name)
		return s.Status.Phase == stratv1.PhaseRunning && s.Status.ChannelsSummary == "6/6" && s.Status.KeysSummary == "9/9"
	}
	defer func() {
		if t.Failed() {
			for _, n := range []string{"btc-carry-backtest", "eth-basis"} {
				s := get(n)
				b, _ := json.MarshalIndent(s.Status, "", " ")
				t.Logf("%s status:\n%s", n, b)
			}
		}
	}()
	wait(t, "both samples Running with every channel and key healthy", 2*time.Minute, exited, func() bool {
		return healthy("btc-carry-backtest") && healthy("eth-basis")
	})
	t.Logf("both samples healthy %s after start", time.Since(start).Round(time.Second))
	if st.Prometheus == "" {
		t.Fatal("make run started no Prometheus (make test installs Debian's prometheus)")
	}
	checkScrapes(t, st, 2)
	// Each logger process spools in a directory of its own, under the
	// run's: never the container's path on this machine, shared.
	if spools, _ := filepath.Glob(filepath.Join(dir, "*.spool", "seg-*.log")); len(spools) < 2 {
		t.Fatalf("the event loggers' spools are not under the run's directory: %v", spools)
	}
	if s := get("eth-basis"); s.Status.Channels[0].InvalidMessages == 0 {
		wait(t, "the malformed messages counted", time.Minute, exited, func() bool {
			for _, ch := range get("eth-basis").Status.Channels {
				if ch.InvalidMessages > 0 {
					return true
				}
			}
			return false
		})
	}

	_ = cmd.Process.Signal(syscall.SIGUSR1) // stop Redis
	wait(t, "the Live sample halts without Redis", 90*time.Second, exited, func() bool {
		return get("eth-basis").Status.Phase == stratv1.PhaseHalted
	})
	waitForAlert(t, st, "StrategyRedisLost", "eth-basis", 60*time.Second)
	_ = cmd.Process.Signal(syscall.SIGUSR1) // start it again
	wait(t, "the Live sample recovers", 90*time.Second, exited, func() bool {
		return get("eth-basis").Status.Phase == stratv1.PhaseRunning
	})
	checkMetricNames(t, st, filepath.Join("..", ".."))

	// Everything it started, and every port it holds, before it stops.
	b, _ := os.ReadFile(filepath.Join(dir, "state.json"))
	_ = json.Unmarshal(b, &st)
	children := descendants(cmd.Process.Pid)
	if len(children) < 4 {
		t.Fatalf("expected kube-apiserver, etcd, redis-server and event loggers among the children, found %v", children)
	}
	ports := []string{hostPort(t, st.APIServer), st.Redis, st.Metrics, hostPort(t, st.Prometheus)}
	for _, p := range st.Loggers {
		ports = append(ports, "127.0.0.1:"+strconv.Itoa(p))
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(90 * time.Second):
		t.Fatal("still running 90s after SIGTERM")
	}
	for _, pid := range children {
		if syscall.Kill(pid, 0) == nil && !zombie(pid) {
			t.Errorf("process %d (%s) still runs", pid, cmdline(pid))
		}
	}
	for _, p := range ports {
		l, err := net.Listen("tcp", p)
		if err != nil {
			t.Errorf("port %s still bound: %v", p, err)
			continue
		}
		l.Close()
	}
}

func wait(t *testing.T, what string, d time.Duration, exited <-chan error, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		select {
		case err := <-exited:
			t.Fatalf("stratops-local exited (%v) while waiting for %s", err, what)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func hostPort(t *testing.T, u string) string {
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return p.Host
}

// descendants lists every process below pid, from /proc.
func descendants(pid int) []int {
	parent := map[int]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) > 1 {
			parent[p], _ = strconv.Atoi(fields[1])
		}
	}
	var out []int
	for p := range parent {
		for q := parent[p]; q > 1; q = parent[q] {
			if q == pid {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] == "Z"
}

func cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.ReplaceAll(string(b), "\x00", " ")
}
