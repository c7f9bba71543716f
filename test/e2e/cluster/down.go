package cluster

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// RuntimeClient connects to the node's container runtime (CRI).
func (c *Cluster) RuntimeClient() (cri.RuntimeServiceClient, func(), error) {
	conn, err := grpc.NewClient("unix://"+c.CRISocket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, err
	}
	return cri.NewRuntimeServiceClient(conn), func() { _ = conn.Close() }, nil
}

func (c *Cluster) proc(name string) *process {
	for _, p := range c.procs {
		if p.name == name {
			return p
		}
	}
	return nil
}

// Down stops everything Up started, by process id, and removes what the
// cluster made on the host: pod sandboxes (through the CRI, so that their
// network is released), the kube-proxy and kubelet iptables chains, the
// bridge, the mounts under its directory and the directory. It reports what
// it could not undo and goes on.
func (c *Cluster) Down() {
	if c == nil {
		return
	}
	start := time.Now()
	warn := func(format string, args ...any) { c.logf("teardown: "+format, args...) }

	// The kubelet first, so that it does not restart what is removed next.
	if p := c.proc("kubelet"); p != nil {
		p.stop(15 * time.Second)
	}
	if p := c.proc("containerd"); p != nil && !p.exited() {
		if err := c.removeSandboxes(); err != nil {
			warn("removing pod sandboxes: %v", err)
		}
	}
	for i := len(c.procs) - 1; i >= 0; i-- {
		c.procs[i].stop(10 * time.Second)
	}
	if c.dns != nil {
		_ = c.dns.Close()
	}
	// Shims outlive containerd; theirs carry its socket address.
	if c.CRISocket != "" {
		for _, pid := range pidsWithArg(c.CRISocket) {
			// Its containers first: they would outlive it.
			for _, child := range descendants(pid) {
				warn("killing leftover container process %d", child)
				_ = syscall.Kill(child, syscall.SIGKILL)
			}
			warn("killing leftover containerd shim %d", pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if c.proc("kube-proxy") != nil || c.swept {
		if out, err := run(c.bin("kube-proxy"), "--cleanup", "--proxy-mode=iptables"); err != nil {
			warn("kube-proxy --cleanup: %v %s", err, out)
		}
	}
	for _, ipt := range []string{"iptables", "ip6tables"} {
		if err := removeChains(ipt, "KUBE-"); err != nil {
			warn("%s: %v", ipt, err)
		}
	}
	if c.dropMade {
		_, _ = run("iptables", "-D", "FORWARD", "-j", dropChain)
		_, _ = run("iptables", "-F", dropChain)
		if _, err := run("iptables", "-X", dropChain); err != nil {
			warn("%v", err)
		}
	}
	if c.bridgeMade {
		if _, err := run("ip", "link", "delete", Bridge); err != nil {
			warn("%v", err)
		}
	}
	if c.Dir != "" {
		unmountUnder(c.Dir, warn)
		if err := os.RemoveAll(c.Dir); err != nil {
			warn("removing %s: %v", c.Dir, err)
		}
	}
	for _, d := range c.newHostDirs {
		_ = os.Remove(d) // only when empty
	}
	c.logf("torn down in %s", time.Since(start).Round(time.Millisecond))
}

// removeSandboxes stops and removes every pod sandbox (and so every
// container) the runtime has, releasing their network namespaces and
// addresses through the CNI plugins.
func (c *Cluster) removeSandboxes() error {
	rs, closeFn, err := c.RuntimeClient()
	if err != nil {
		return err
	}
	defer closeFn()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	list, err := rs.ListPodSandbox(ctx, &cri.ListPodSandboxRequest{})
	if err != nil {
		return err
	}
	for _, sb := range list.Items {
		if _, err := rs.StopPodSandbox(ctx, &cri.StopPodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			return fmt.Errorf("stopping sandbox of %s/%s: %w", sb.Metadata.Namespace, sb.Metadata.Name, err)
		}
		if _, err := rs.RemovePodSandbox(ctx, &cri.RemovePodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			return fmt.Errorf("removing sandbox of %s/%s: %w", sb.Metadata.Namespace, sb.Metadata.Name, err)
		}
	}
	c.logf("teardown: removed %d pod sandboxes", len(list.Items))
	return nil
}

// removeChains deletes every chain whose name starts with prefix, in every
// table, and the rules elsewhere that jump to them.
func removeChains(ipt, prefix string) error {
	for _, table := range []string{"filter", "nat", "mangle", "raw"} {
		out, err := run(ipt, "-t", table, "-S")
		if err != nil {
			continue // table not available
		}
		var chains []string
		for _, line := range strings.Split(out, "\n") {
			f := splitRule(line)
			switch {
			case len(f) >= 2 && f[0] == "-N" && strings.HasPrefix(f[1], prefix):
				chains = append(chains, f[1])
			case len(f) >= 2 && f[0] == "-A" && !strings.HasPrefix(f[1], prefix) && strings.Contains(line, "-j "+prefix):
				args := append([]string{"-t", table, "-D"}, f[1:]...)
				if _, err := run(ipt, args...); err != nil {
					return err
				}
			}
		}
		for _, ch := range chains {
			if _, err := run(ipt, "-t", table, "-F", ch); err != nil {
				return err
			}
		}
		for _, ch := range chains {
			if _, err := run(ipt, "-t", table, "-X", ch); err != nil {
				return err
			}
		}
	}
	return nil
}

// unmountUnder detaches every mount below dir, deepest first.
func unmountUnder(dir string, warn func(string, ...any)) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	defer f.Close()
	var mounts []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			mounts = append(mounts, fields[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(mounts)))
	for _, m := range mounts {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
			warn("unmounting %s: %v", m, err)
		}
	}
}

// splitRule splits a line of `iptables -S` into arguments, honouring the
// double quotes around comments.
func splitRule(line string) []string {
	var args []string
	var cur strings.Builder
	inQuote, have := false, false
	for i := 0; i < len(line); i++ {
		ch := line[i]
		switch {
		case ch == '\\' && inQuote && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
		case ch == '"':
			inQuote, have = !inQuote, true
		case ch == ' ' && !inQuote:
			if have {
				args = append(args, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteByte(ch)
			have = true
		}
	}
	if have {
		args = append(args, cur.String())
	}
	return args
}

// Leftovers lists what a torn-down cluster left on the host: processes of
// its directory or containerd, the bridge, iptables chains, mounts and the
// directory itself. Empty when Down did its job.
func (c *Cluster) Leftovers() []string {
	var left []string
	for _, p := range c.procs {
		if !p.exited() {
			left = append(left, fmt.Sprintf("process %s (pid %d)", p.name, p.cmd.Process.Pid))
		}
	}
	if c.Dir != "" {
		for _, pid := range pidsWithArg(c.CRISocket) {
			left = append(left, fmt.Sprintf("containerd shim (pid %d)", pid))
		}
		if _, err := os.Stat(c.Dir); err == nil {
			left = append(left, "directory "+c.Dir)
		}
		if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil && strings.Contains(string(b), c.Dir+"/") {
			left = append(left, "mounts under "+c.Dir)
		}
	}
	if _, err := net.InterfaceByName(Bridge); err == nil {
		left = append(left, "interface "+Bridge)
	}
	for _, ipt := range []string{"iptables", "ip6tables"} {
		for _, table := range []string{"filter", "nat", "mangle", "raw"} {
			out, _ := run(ipt, "-t", table, "-S")
			for _, line := range strings.Split(out, "\n") {
				if strings.HasPrefix(line, "-N KUBE-") || strings.HasPrefix(line, "-N "+dropChain) {
					left = append(left, fmt.Sprintf("%s -t %s chain %s", ipt, table, strings.TrimPrefix(line, "-N ")))
				}
			}
		}
	}
	return left
}

// Sweep tears down a cluster whose test binary died before it could: it
// finds the cluster by its directory (a stratops-e2e temporary directory),
// kills what still runs of its components, starts its containerd again from
// the cluster's own configuration so that the pods are removed through the
// CRI (releasing their network), and then does what Down does.
func Sweep(dir, binDir string, log io.Writer) {
	c := &Cluster{
		Options:   Options{BinDir: binDir, Log: log, LogDir: filepath.Join(dir, "sweep-logs")},
		Dir:       dir,
		CRISocket: filepath.Join(dir, "containerd", "containerd.sock"),
		swept:     true,
		// The runtime's host directories go when empty, as Down does for
		// the ones its Up saw appear.
		newHostDirs: hostDirs,
	}
	if _, err := net.InterfaceByName(Bridge); err == nil {
		c.bridgeMade = true
	}
	if out, err := run("iptables", "-S", dropChain); err == nil && out != "" {
		c.dropMade = true
	}
	// The components (not the shims: they keep the pods, which the CRI
	// removes below) carry the directory in their arguments.
	if dir != "" {
		components := processes(func(args [][]byte) bool {
			return !bytes.Contains(args[0], []byte("containerd-shim")) &&
				bytes.Contains(bytes.Join(args, []byte{' '}), []byte(dir+"/"))
		})
		for _, pid := range components {
			c.logf("sweep: killing %d", pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	time.Sleep(500 * time.Millisecond)
	config := filepath.Join(dir, "containerd", "config.toml")
	if _, err := os.Stat(config); err == nil && dir != "" {
		_ = os.MkdirAll(c.LogDir, 0o755)
		_ = os.Remove(c.CRISocket)
		if p, err := c.start("containerd", "containerd", "--config", config); err == nil {
			// Wait for its CRI plugin, which reloads the pods it knew.
			deadline := time.Now().Add(30 * time.Second)
			for time.Now().Before(deadline) && !p.exited() {
				if c.criReady() {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
	}
	c.Down()
}

// criReady says whether the runtime answers CRI calls.
func (c *Cluster) criReady() bool {
	rs, closeFn, err := c.RuntimeClient()
	if err != nil {
		return false
	}
	defer closeFn()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = rs.ListPodSandbox(ctx, &cri.ListPodSandboxRequest{})
	return err == nil
}

// descendants lists every process below pid.
func descendants(pid int) []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so read after ')'.
		rest := string(b[strings.LastIndexByte(string(b), ')')+1:])
		f := strings.Fields(rest)
		if len(f) > 1 {
			if ppid, err := strconv.Atoi(f[1]); err == nil {
				children[ppid] = append(children[ppid], p)
			}
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, ch := range children[p] {
			out = append(out, ch)
			queue = append(queue, ch)
		}
	}
	return out
}
