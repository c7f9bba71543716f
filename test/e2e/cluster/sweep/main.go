// Command sweep tears down what an end-to-end cluster left behind when its
// test binary was killed before it could (see cluster.Sweep): every
// stratops-e2e temporary directory's processes, pods, mounts and directory,
// the bridge and the iptables chains. hack/e2e/run.sh runs it when it finds
// such leftovers.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/stratops/stratops/test/e2e/cluster"
)

func main() {
	bin := flag.String("bin", "", "directory of the Kubernetes binaries (kube-proxy for its --cleanup)")
	flag.Parse()
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "stratops-e2e-*"))
	if len(dirs) == 0 {
		// No directory left, but maybe the bridge or the chains.
		dirs = []string{""}
	}
	for _, d := range dirs {
		cluster.Sweep(d, *bin, os.Stderr)
	}
	c := &cluster.Cluster{}
	if left := c.Leftovers(); len(left) > 0 {
		fmt.Fprintln(os.Stderr, "sweep: still left:", left)
		os.Exit(1)
	}
}
