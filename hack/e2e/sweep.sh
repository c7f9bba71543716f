#!/usr/bin/env bash
# Removes what an e2e cluster left behind when its test binary was killed
# before it could tear the cluster down: its processes (found by the
# stratops-e2e temporary directory in their command line), kube-proxy's and
# the kubelet's iptables chains, the bridge, the mounts and the directory.
# Usage: hack/e2e/sweep.sh <kubernetes bin dir>
set -uo pipefail
bindir=${1:?kubernetes bin dir}
for pid in $(grep -l -a -e '/tmp/stratops-e2e-' -e "$bindir/" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3); do
	[ "$pid" != $$ ] && kill -9 "$pid" 2>/dev/null && echo "killed $pid"
done
"$bindir/kube-proxy" --cleanup --proxy-mode=iptables >/dev/null 2>&1 || true
for ipt in iptables ip6tables; do
	if $ipt-save 2>/dev/null | grep -q -e KUBE- -e STRATOPS-E2E; then
		$ipt-save | grep -v -e KUBE- -e STRATOPS-E2E | $ipt-restore && echo "removed $ipt KUBE-* chains"
	fi
done
ip link delete cni0 2>/dev/null && echo "deleted cni0"
for d in /tmp/stratops-e2e-*; do
	[ -d "$d" ] || continue
	grep " $d/" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l
	rm -rf "$d" && echo "removed $d"
done
