package fleet

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

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
	w := watching(b, cfg, "scale")

	for b.Loop() {
		cmd := exec.Command(bin, "--metrics-bind-address=0", "--health-probe-bind-address=0", "--revision-key-namespace=default")
		cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "STRATOPS_EVENTLOGGER_IMAGE=stratops:test")
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
		b.Logf("%d Live Strategies, the manager in its own process: all Ready in %s; its peak RSS %d MiB (%d MiB of it now its binary's mapped pages); its CPU %s",
			n, took.Round(100*time.Millisecond), rss>>20, binary>>20, cpu.Round(100*time.Millisecond))
		b.ReportMetric(took.Seconds(), "s-to-all-ready")
		b.ReportMetric(float64(rss>>20), "manager-peak-RSS-MiB")
	}
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
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The fields after the command's closing parenthesis; utime and
	// stime are the 14th and 15th of the line, in clock ticks (100/s).
	rest := string(stat[bytes.LastIndexByte(stat, ')')+2:])
	f := strings.Fields(rest)
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("/proc/%d/stat: %q", pid, stat)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}
