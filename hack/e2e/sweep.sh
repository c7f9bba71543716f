#!/usr/bin/env bash
# Removes what an e2e cluster left behind when its test binary was killed
# before it could tear the cluster down (test/e2e/cluster/sweep): its pods
# (through its own containerd, started again), processes, kube-proxy's and
# the kubelet's iptables chains, the bridge, the mounts and the directory.
# Usage: hack/e2e/sweep.sh <kubernetes bin dir>
set -euo pipefail
cd "$(dirname "$0")/../.."
exec go run ./test/e2e/cluster/sweep -bin "${1:?kubernetes bin dir}"
