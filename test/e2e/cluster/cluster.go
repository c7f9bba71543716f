// Package cluster assembles a real single-node Kubernetes cluster on this
// machine, for the end-to-end tests, from binaries built from source and
// Debian's containerd: etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler, containerd with the bridge CNI plugin, kubelet and
// kube-proxy. It needs root. Everything it starts is stopped by its process
// id in Down, which also removes the bridge, the iptables chains the node
// made, the mounts and the temporary directory.
//
// Traffic stays on the machine: the API server and etcd listen on loopback
// and the bridge gateway, pods live on the bridge 10.88.0.0/16 with a route
// only to the bridge and to the Service range (no default route), and
// anything a pod would forward off the bridge is dropped. Pods resolve
// Services by name through a DNS server of this package's own on the
// gateway (dns.go); no other name resolves.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/reference"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

const (
	// Bridge is the node's pod bridge.
	Bridge = "cni0"
	// GatewayIP is the bridge's address on the host: the node's IP, where
	// the API server is advertised and where a Redis "outside the cluster"
	// listens.
	GatewayIP = "10.88.0.1"
	podSubnet = "10.88.0.0/16"
	// ServiceRange is the ClusterIP range; the kubernetes Service is its
	// first address.
	ServiceRange = "10.96.0.0/24"
	kubeSvcIP    = "10.96.0.1"
	// NodeName is the node's name.
	NodeName = "stratops-e2e"
	// PauseImage is the pod sandbox image (built by hack/e2e/images.sh).
	PauseImage = "localhost/stratops-e2e/pause:1"
	// dropChain drops what pods would forward off the bridge.
	dropChain = "STRATOPS-E2E-FORWARD"
)

// Options configure Up.
type Options struct {
	// BinDir holds etcd, kube-apiserver, kube-controller-manager,
	// kube-scheduler, kubelet and kube-proxy.
	BinDir string
	// Images are OCI archives imported into the node's containerd.
	Images []Archive
	// LogDir receives every component's log; kept after Down.
	LogDir string
	// Log receives progress lines.
	Log io.Writer
}

// Archive is an OCI archive of one image for the node's containerd.
type Archive struct {
	// Path is the archive's file.
	Path string
	// Refs are the references manifests give the image, when they differ
	// from its name in the archive: short names such as redis:7.0 or
	// stratops:0.1.0, which the kubelet looks up under their normalized
	// form (the default registry's). The image is tagged under each.
	Refs []string
}

// Cluster is a running cluster.
type Cluster struct {
	Options
	// Dir is the temporary directory of this cluster's state.
	Dir string
	// Kubeconfig is an admin kubeconfig (system:masters).
	Kubeconfig string
	// Config is the admin REST config.
	Config *rest.Config
	// CRISocket is containerd's socket.
	CRISocket string

	pki        *pki
	dns        net.PacketConn
	procs      []*process
	bridgeMade bool
	dropMade   bool
	apiPort    int
	// hostDirs the runtime creates on the host that were not there before
	// Up: removed by Down when empty.
	newHostDirs []string
	// swept: this is Sweep's view of a dead cluster.
	swept bool
}

// hostDirs are the directories containerd and the CNI plugins use on the
// host whatever their configuration says.
var hostDirs = []string{"/var/lib/cni/results", "/var/lib/cni", "/var/run/netns"}

func (c *Cluster) logf(format string, args ...any) {
	if c.Log != nil {
		_, _ = fmt.Fprintf(c.Log, "[cluster %s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
}

// Up starts the cluster and returns once the node is Ready and the default
// ServiceAccount exists. On error, everything started so far is torn down.
func Up(ctx context.Context, opts Options) (c *Cluster, err error) {
	c = &Cluster{Options: opts}
	if os.Geteuid() != 0 {
		return nil, errors.New("the e2e cluster needs root")
	}
	if _, err := net.InterfaceByName(Bridge); err == nil {
		return nil, fmt.Errorf("interface %s already exists: another cluster is running on this machine, or one was not torn down (ip link delete %s)", Bridge, Bridge)
	}
	for _, d := range hostDirs {
		if _, err := os.Stat(d); os.IsNotExist(err) {
			c.newHostDirs = append(c.newHostDirs, d)
		}
	}
	if c.Dir, err = os.MkdirTemp("", "stratops-e2e-"); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(c.LogDir, 0o755); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			c.Down()
			c = nil
		}
	}()
	start := time.Now()
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"bridge", c.upBridge},
		{"control plane", c.upControlPlane},
		{"containerd", c.upContainerd},
		{"controllers", c.upControllers},
		{"dns", c.upDNS},
		{"node", c.upNode},
	}
	for _, s := range steps {
		t := time.Now()
		if err := s.fn(ctx); err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		c.logf("%s up in %s", s.name, time.Since(t).Round(time.Millisecond))
	}
	c.logf("cluster ready in %s", time.Since(start).Round(time.Millisecond))
	return c, nil
}

func (c *Cluster) path(parts ...string) string {
	return filepath.Join(append([]string{c.Dir}, parts...)...)
}

func (c *Cluster) upBridge(context.Context) error {
	if _, err := run("ip", "link", "add", Bridge, "type", "bridge"); err != nil {
		return err
	}
	c.bridgeMade = true
	if _, err := run("ip", "addr", "add", GatewayIP+"/16", "dev", Bridge); err != nil {
		return err
	}
	if _, err := run("ip", "link", "set", Bridge, "up"); err != nil {
		return err
	}
	// Whatever a pod sends that would leave the bridge through the host is
	// dropped (the host does not forward by default either).
	if _, err := run("iptables", "-N", dropChain); err != nil {
		return err
	}
	c.dropMade = true
	for _, args := range [][]string{
		{"-A", dropChain, "-i", Bridge, "!", "-o", Bridge, "-j", "DROP"},
		{"-I", "FORWARD", "1", "-j", dropChain},
	} {
		if _, err := run("iptables", args...); err != nil {
			return err
		}
	}
	return nil
}

func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (c *Cluster) bin(name string) string { return filepath.Join(c.BinDir, name) }

func (c *Cluster) upControlPlane(ctx context.Context) error {
	var err error
	c.pki, err = newPKI(c.path("pki"),
		[]net.IP{net.ParseIP("127.0.0.1"), net.ParseIP(GatewayIP), net.ParseIP(kubeSvcIP)},
		[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"})
	if err != nil {
		return err
	}
	clientPort, err := freePort("127.0.0.1")
	if err != nil {
		return err
	}
	peerPort, err := freePort("127.0.0.1")
	if err != nil {
		return err
	}
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", clientPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	etcd, err := c.start("etcd", c.bin("etcd"),
		"--name=e2e", "--data-dir="+c.path("etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=e2e="+peerURL, "--unsafe-no-fsync=true")
	if err != nil {
		return err
	}
	if err := waitHTTP(ctx, etcd, etcdURL+"/health", nil, 30*time.Second); err != nil {
		return err
	}

	if c.apiPort, err = freePort("0.0.0.0"); err != nil {
		return err
	}
	p := c.pki
	api, err := c.start("kube-apiserver", c.bin("kube-apiserver"),
		"--etcd-servers="+etcdURL,
		"--bind-address=0.0.0.0", "--secure-port="+strconv.Itoa(c.apiPort),
		"--advertise-address="+GatewayIP,
		"--service-cluster-ip-range="+ServiceRange,
		"--tls-cert-file="+p.path("apiserver.crt"), "--tls-private-key-file="+p.path("apiserver.key"),
		"--client-ca-file="+p.path("ca.crt"),
		"--service-account-key-file="+p.path("sa.key"),
		"--service-account-signing-key-file="+p.path("sa.key"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--authorization-mode=Node,RBAC",
		// Reach the kubelet at the node's InternalIP (the gateway), never
		// through a name lookup.
		"--kubelet-preferred-address-types=InternalIP",
		"--allow-privileged=false",
		"--cert-dir="+c.path("apiserver-certs"))
	if err != nil {
		return err
	}
	c.Kubeconfig = c.path("admin.kubeconfig")
	if err := c.writeKubeconfig(c.Kubeconfig, fmt.Sprintf("https://127.0.0.1:%d", c.apiPort)); err != nil {
		return err
	}
	if c.Config, err = clientcmd.BuildConfigFromFlags("", c.Kubeconfig); err != nil {
		return err
	}
	tr, err := rest.TransportFor(c.Config)
	if err != nil {
		return err
	}
	return waitHTTP(ctx, api, fmt.Sprintf("https://127.0.0.1:%d/readyz", c.apiPort), &http.Client{Transport: tr}, 90*time.Second)
}

func (c *Cluster) writeKubeconfig(path, server string) error {
	ca, _ := os.ReadFile(c.pki.path("ca.crt"))
	crt, _ := os.ReadFile(c.pki.path("admin.crt"))
	key, _ := os.ReadFile(c.pki.path("admin.key"))
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: admin
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: e2e
  context: {cluster: e2e, user: admin}
current-context: e2e
`, server, b64(ca), b64(crt), b64(key))
	return os.WriteFile(path, []byte(cfg), 0o600)
}

// waitHTTP waits for url to answer 200, or for the process to exit.
func waitHTTP(ctx context.Context, p *process, url string, client *http.Client, timeout time.Duration) error {
	if client == nil {
		client = &http.Client{}
	}
	client.Timeout = 2 * time.Second
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		if p.exited() {
			return fmt.Errorf("%s exited: %v; its log ends:\n%s", p.name, p.err, p.tail(30))
		}
		resp, err := client.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ready at %s after %s (last: %s); its log ends:\n%s", p.name, url, timeout, last, p.tail(30))
}

func (c *Cluster) upContainerd(ctx context.Context) error {
	for _, d := range []string{"containerd/root", "containerd/state", "containerd/opt", "cni/net.d", "cni/ipam"} {
		if err := os.MkdirAll(c.path(d), 0o755); err != nil {
			return err
		}
	}
	c.CRISocket = c.path("containerd", "containerd.sock")
	cri := `plugins."io.containerd.grpc.v1.cri"`
	config := fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
[grpc]
  address = %[3]q
[ttrpc]
  address = "%[3]s.ttrpc"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = %[4]q
[%[5]s]
  sandbox_image = %[6]q
  # The sandbox lacks CAP_SYS_RESOURCE: without this every pod sandbox
  # fails with "can't get final child's PID from pipe".
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  [%[5]s.cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %[7]q
  [%[5]s.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [%[5]s.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [%[5]s.containerd.runtimes.runc.options]
        SystemdCgroup = false
`, c.path("containerd/root"), c.path("containerd/state"), c.CRISocket, c.path("containerd/opt"),
		cri, PauseImage, c.path("cni/net.d"))
	if err := os.WriteFile(c.path("containerd", "config.toml"), []byte(config), 0o644); err != nil {
		return err
	}
	// Pods reach the bridge (the host's Redis, the node) and, through
	// kube-proxy on the host, the Service range; there is no default route.
	cni := fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "stratops-e2e",
  "plugins": [{
    "type": "bridge",
    "bridge": %q,
    "isGateway": true,
    "ipMasq": false,
    "hairpinMode": true,
    "ipam": {
      "type": "host-local",
      "dataDir": %q,
      "ranges": [[{"subnet": %q, "gateway": %q}]],
      "routes": [{"dst": %q}]
    }
  }]
}
`, Bridge, c.path("cni/ipam"), podSubnet, GatewayIP, ServiceRange)
	if err := os.WriteFile(c.path("cni/net.d", "10-stratops-e2e.conflist"), []byte(cni), 0o644); err != nil {
		return err
	}
	p, err := c.start("containerd", "containerd", "--config", c.path("containerd", "config.toml"))
	if err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if p.exited() {
			return fmt.Errorf("containerd exited: %v; its log ends:\n%s", p.err, p.tail(30))
		}
		if _, err := run("ctr", "-a", c.CRISocket, "version"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("containerd did not answer on %s; its log ends:\n%s", c.CRISocket, p.tail(30))
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, img := range c.Images {
		t := time.Now()
		out, err := run("ctr", "-a", c.CRISocket, "-n", "k8s.io", "images", "import", img.Path)
		if err != nil {
			return err
		}
		if len(img.Refs) > 0 {
			if err := c.tagImported(out, img); err != nil {
				return err
			}
		}
		c.logf("imported %s in %s", filepath.Base(img.Path), time.Since(t).Round(time.Millisecond))
	}
	out, err := run("ctr", "-a", c.CRISocket, "-n", "k8s.io", "images", "ls", "-q")
	if err != nil {
		return err
	}
	if !strings.Contains(out, PauseImage) {
		return fmt.Errorf("the sandbox image %s is not in containerd after import (images: %s)", PauseImage, strings.Fields(out))
	}
	return nil
}

// tagImported tags the one image ctr import said it unpacked ("unpacking
// <name> (sha256:...)...done") under each of the archive's references,
// normalized as the kubelet normalizes them.
func (c *Cluster) tagImported(importOutput string, img Archive) error {
	var names []string
	for _, line := range strings.Split(importOutput, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "unpacking "); ok {
			names = append(names, strings.Fields(rest)[0])
		}
	}
	if len(names) != 1 {
		return fmt.Errorf("importing %s: want one image, ctr said: %q", img.Path, importOutput)
	}
	for _, ref := range img.Refs {
		named, err := reference.ParseNormalizedNamed(ref)
		if err != nil {
			return fmt.Errorf("%s: %w", ref, err)
		}
		if named.String() == names[0] {
			continue
		}
		if _, err := run("ctr", "-a", c.CRISocket, "-n", "k8s.io", "images", "tag", "--force", names[0], named.String()); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cluster) upControllers(context.Context) error {
	if _, err := c.start("kube-controller-manager", c.bin("kube-controller-manager"),
		"--kubeconfig="+c.Kubeconfig,
		"--authentication-kubeconfig="+c.Kubeconfig, "--authorization-kubeconfig="+c.Kubeconfig,
		"--leader-elect=false",
		"--service-account-private-key-file="+c.pki.path("sa.key"),
		"--root-ca-file="+c.pki.path("ca.crt"),
		"--use-service-account-credentials=false",
		"--secure-port=0",
		"--controllers=*,-nodeipam"); err != nil {
		return err
	}
	_, err := c.start("kube-scheduler", c.bin("kube-scheduler"),
		"--kubeconfig="+c.Kubeconfig,
		"--authentication-kubeconfig="+c.Kubeconfig, "--authorization-kubeconfig="+c.Kubeconfig,
		"--leader-elect=false", "--secure-port=0")
	return err
}

func (c *Cluster) upNode(ctx context.Context) error {
	for _, d := range []string{"kubelet", "pod-logs"} {
		if err := os.MkdirAll(c.path(d), 0o755); err != nil {
			return err
		}
	}
	// The node's own resolv.conf is empty: pods get only the cluster's
	// DNS (clusterDNS, served by upDNS), and nothing resolves to outside
	// the machine.
	if err := os.WriteFile(c.path("resolv.conf"), nil, 0o644); err != nil {
		return err
	}
	healthz, err := freePort("127.0.0.1")
	if err != nil {
		return err
	}
	kubeletPort, err := freePort(GatewayIP)
	if err != nil {
		return err
	}
	config := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %s
port: %d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %d
cgroupDriver: cgroupfs
failCgroupV1: false
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
localStorageCapacityIsolation: false
containerRuntimeEndpoint: unix://%s
podLogsDir: %s
resolvConf: %s
clusterDNS: [%s]
clusterDomain: %s
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization:
  mode: AlwaysAllow
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%%"
  imagefs.available: "1%%"
serializeImagePulls: false
`, GatewayIP, kubeletPort, healthz, c.CRISocket, c.path("pod-logs"), c.path("resolv.conf"), GatewayIP, ClusterDomain)
	if err := os.WriteFile(c.path("kubelet.yaml"), []byte(config), 0o644); err != nil {
		return err
	}
	kubelet, err := c.start("kubelet", c.bin("kubelet"),
		"--kubeconfig="+c.Kubeconfig, "--config="+c.path("kubelet.yaml"),
		"--root-dir="+c.path("kubelet"), "--hostname-override="+NodeName,
		"--node-ip="+GatewayIP, "--v=1")
	if err != nil {
		return err
	}
	metrics, err := freePort("127.0.0.1")
	if err != nil {
		return err
	}
	proxyHealth, err := freePort("127.0.0.1")
	if err != nil {
		return err
	}
	if _, err := c.start("kube-proxy", c.bin("kube-proxy"),
		"--kubeconfig="+c.Kubeconfig, "--proxy-mode=iptables",
		"--cluster-cidr="+podSubnet, "--hostname-override="+NodeName,
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", metrics),
		fmt.Sprintf("--healthz-bind-address=127.0.0.1:%d", proxyHealth),
		"--conntrack-max-per-core=0"); err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(120 * time.Second)
	for {
		if kubelet.exited() {
			return fmt.Errorf("kubelet exited: %v; its log ends:\n%s", kubelet.err, kubelet.tail(40))
		}
		ready, why := nodeReady(ctx, cs)
		if ready {
			_, err := cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
			if err == nil {
				return nil
			}
			why = "no default ServiceAccount yet: " + err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %s not Ready after 120s (%s); kubelet's log ends:\n%s", NodeName, why, kubelet.tail(40))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func nodeReady(ctx context.Context, cs kubernetes.Interface) (bool, string) {
	n, err := cs.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, "node not registered"
	}
	if err != nil {
		return false, err.Error()
	}
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return cond.Status == corev1.ConditionTrue, cond.Reason + ": " + cond.Message
		}
	}
	return false, "no Ready condition"
}
