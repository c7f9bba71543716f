package fleet

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// BenchmarkScale_ManagerProcess: N Live Strategies on one Redis
// (STRATOPS_SCALE_N, default 1,000) reconciled by the manager binary run
// as provisioned, in a process of its own (built from cmd/manager, or the
// binary STRATOPS_SCALE_MANAGER names, another commit's for a before;
// default flags but the addresses it would listen on). It reports the
// time to all Ready, and that process's peak RSS (VmHWM: its heap, its
// stacks and the pages of its binary, nothing of the test's) and CPU. The request count
// and the heap's breakdown are BenchmarkScale_LiveStrategiesToReady's,
// which runs the manager in the test's process. Run it with -benchtime=1x
// (make scale).
func BenchmarkScale_ManagerProcess(b *testing.B) {
	n, cfg, c, srv := scaleSetup(b, "scale")
	ctx := context.Background()
	dir := b.TempDir()
	bin := os.Getenv("STRATOPS_SCALE_MANAGER")
	if bin == "" {
		bin = filepath.Join(dir, "manager")
		if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/manager").CombinedOutput(); err != nil {
			b.Fatalf("building the manager: %v\n%s", err, out)
		}
	}
	kubeconfig := writeKubeconfig(b, cfg, dir)
	limit, soft := containerLimit(b)
	w := watching(b, cfg, "scale")

	for b.Loop() {
		cmd := exec.Command(bin, "--metrics-bind-address=0", "--health-probe-bind-address=0", "--revision-key-namespace=default")
		cmd.Env = append(withoutGOMEMLIMIT(os.Environ()), "KUBECONFIG="+kubeconfig, "STRATOPS_EVENTLOGGER_IMAGE=stratops:test")
		if soft > 0 {
			cmd.Env = append(cmd.Env, fmt.Sprintf("GOMEMLIMIT=%d", soft))
		}
		var logs bytes.Buffer
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		stopKubelet := standInKubelet(b, c, w, "scale")
		start := time.Now()
		parallel(b, n, func(i int) error { return c.Create(ctx, liveStrategy("scale", fmt.Sprintf("s%05d", i), srv.Addr)) })
		waitAll(b, w, "scale", n, "Ready", ready)
		took := time.Since(start)
		stopKubelet()
		rss, binary := processStatus(b, cmd.Process.Pid, "VmHWM"), processStatus(b, cmd.Process.Pid, "RssFile")
		cpu := processCPU(b, cmd.Process.Pid)
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
		if b.Failed() {
			b.Logf("the manager said:\n%s", logs.String())
		}
		under := "no memory limit"
		if limit > 0 {
			under = fmt.Sprintf("under a container memory limit of %d MiB (its soft limit %d MiB)", limit>>20, soft>>20)
		}
		b.Logf("%d Live Strategies, the manager in its own process, %s: all Ready in %s; its peak RSS %d MiB (%d MiB of it now its binary's mapped pages); its CPU %s",
			n, under, took.Round(100*time.Millisecond), rss>>20, binary>>20, cpu.Round(100*time.Millisecond))
		if limit > 0 && int64(rss) > limit {
			b.Errorf("its peak RSS %d MiB is over the limit of %d MiB: a container would have been killed", rss>>20, limit>>20)
		}
		b.ReportMetric(took.Seconds(), "s-to-all-ready")
		b.ReportMetric(float64(rss>>20), "manager-peak-RSS-MiB")
	}
}

// containerLimit is the container memory limit STRATOPS_SCALE_MEMORY_LIMIT
// gives (a quantity: 400Mi), 0 for none, and the Go soft memory limit the
// manager sets itself under it (--memory-limit-ratio's default of 0.9).
// The manager runs with that soft limit (GOMEMLIMIT), as it would in a
// container with that limit; the benchmark fails if its peak RSS goes
// over the limit, where the container would have been killed.
func containerLimit(b *testing.B) (limit, soft int64) {
	v := os.Getenv("STRATOPS_SCALE_MEMORY_LIMIT")
	if v == "" {
		return 0, 0
	}
	q, err := resource.ParseQuantity(v)
	if err != nil {
		b.Fatalf("STRATOPS_SCALE_MEMORY_LIMIT=%q: %v", v, err)
	}
	return q.Value(), int64(float64(q.Value()) * 0.9)
}

// withoutGOMEMLIMIT is env without GOMEMLIMIT: the manager's soft limit
// is the benchmark's to set, not the test process's.
func withoutGOMEMLIMIT(env []string) []string {
	return slices.DeleteFunc(env, func(e string) bool { return strings.HasPrefix(e, "GOMEMLIMIT=") })
}

// writeKubeconfig writes cfg (envtest's, with a client certificate) as a
// kubeconfig file in dir, for a process of its own.
func writeKubeconfig(b *testing.B, cfg *rest.Config, dir string) string {
	b.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin"}
	kc.CurrentContext = "envtest"
	path := filepath.Join(dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		b.Fatal(err)
	}
	return path
}

// processStatus is a figure of a process's /proc/<pid>/status, in bytes.
func processStatus(b *testing.B, pid int, field string) uint64 {
	b.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	return statusField(b, status, field)
}

// processCPU is a process's user and system CPU time so far.
func processCPU(b *testing.B, pid int) time.Duration {
	b.Helper()
	_, f, err := procStat(pid)
	if err != nil {
		b.Fatal(err)
	}
	// utime and stime are the 14th and 15th fields of the line, in clock
	// ticks (100/s).
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("/proc/%d/stat: %q", pid, f)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// procStat reads a process's /proc/<pid>/stat: its command name, and the
// fields after it (the line's third field, its state, first; its parent's
// ID second).
func procStat(pid int) (comm string, fields []string, err error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", nil, err
	}
	open, end := bytes.IndexByte(stat, '('), bytes.LastIndexByte(stat, ')')
	if open < 0 || end < open {
		return "", nil, fmt.Errorf("/proc/%d/stat: %q", pid, stat)
	}
	fields = strings.Fields(string(stat[end+1:]))
	if len(fields) < 13 {
		return "", nil, fmt.Errorf("/proc/%d/stat: %q", pid, stat)
	}
	return string(stat[open+1 : end]), fields, nil
}
