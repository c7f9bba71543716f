#!/usr/bin/env bash
# make e2e: the end-to-end tests on a real single-node cluster built on this
# machine (test/e2e). Everything it needs is set up here, on a fresh machine
# too, and cached: Debian packages (apt-get) when missing, the Kubernetes
# binaries built from source into bin/k8s (hack/build-envtest.sh), the images
# built with podman into bin/e2e/images (hack/e2e/images.sh).
#
# Not root, or a kernel without what a node needs: it says exactly what is
# missing and "e2e skipped", and exits 0; with CI=true a skip is a failure.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
KUBE_VERSION=${KUBE_VERSION:-v1.37.2}
IMG=${E2E_IMG:-localhost/stratops:e2e}
bindir=$root/bin/k8s/$KUBE_VERSION
log() { printf '[e2e] %s\n' "$*" >&2; }

skip() {
	log "cannot run the end-to-end tests on this machine:"
	for m in "$@"; do log "  missing: $m"; done
	if [ "${CI:-}" = true ]; then
		log "CI=true: a skipped e2e is a failure"
		exit 1
	fi
	echo "e2e skipped"
	exit 0
}

# --- what the machine must offer -------------------------------------------
[ "$(id -u)" = 0 ] || skip "root (the node runs containerd, the kubelet and iptables, and makes a bridge)"
missing=()
grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || missing+=("the overlay filesystem (containerd's snapshotter)")
[ -d /sys/fs/cgroup/memory ] || [ -f /sys/fs/cgroup/cgroup.controllers ] || missing+=("cgroups with the memory controller under /sys/fs/cgroup")
if ip link add stratops-chk type bridge 2>/dev/null; then ip link delete stratops-chk; else missing+=("bridge interfaces (ip link add ... type bridge)"); fi
unshare --net true 2>/dev/null || missing+=("network namespaces (unshare --net)")
[ ${#missing[@]} -eq 0 ] || skip "${missing[@]}"

# --- packages ----------------------------------------------------------------
need=()
for p in containerd:containerd runc:runc ctr:containerd podman:podman debootstrap:debootstrap \
	iptables:iptables redis-server:redis-server ip:iproute2; do
	command -v "${p%%:*}" >/dev/null 2>&1 || need+=("${p#*:}")
done
for plugin in bridge host-local loopback; do
	[ -x /usr/lib/cni/$plugin ] || { need+=(containernetworking-plugins); break; }
done
if [ ${#need[@]} -gt 0 ]; then
	log "installing from Debian: ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	{ apt-get update -qq && apt-get install -y -qq "${need[@]}"; } >"$root/bin/e2e-apt.log" 2>&1 ||
		{ tail -n 20 "$root/bin/e2e-apt.log" >&2; skip "Debian packages: ${need[*]} (apt-get failed, log above)"; }
fi
iptables -S >/dev/null 2>&1 || skip "a working iptables (iptables -S failed)"

# --- binaries and images -------------------------------------------------------
start=$(date +%s)
# The base images (debootstrap: mostly waiting on the mirror) are made while
# the binaries (CPU) build.
mkdir -p "$root/bin/e2e"
hack/e2e/images.sh --bases >"$root/bin/e2e/bases.log" 2>&1 &
bases=$!
bins=(kube-apiserver etcd kube-controller-manager kube-scheduler kubelet kube-proxy)
command -v kubectl >/dev/null 2>&1 || bins+=(kubectl)
KUBE_VERSION=$KUBE_VERSION hack/build-envtest.sh "${bins[@]}" >/dev/null
export PATH=$bindir:$PATH
log "binaries ready in $(($(date +%s) - start))s"
wait "$bases" || { cat "$root/bin/e2e/bases.log" >&2; log "building the base images failed"; exit 1; }
grep '^\[e2e images\]' "$root/bin/e2e/bases.log" >&2 || true
hack/e2e/images.sh "$IMG" "$root/bin/e2e/images"
log "images ready in $(($(date +%s) - start))s (binaries and images)"
# The operator is deployed as a platform team installs a release:
# dist/stratops.yaml and the image archive beside it, from make release.
make -s manifests kustomize >/dev/null
make -s release >"$root/bin/e2e/release.log" 2>&1 || { tail -n 30 "$root/bin/e2e/release.log" >&2; exit 1; }
previous=$(hack/e2e/previous-release.sh)
log "previous release: $previous"
case $previous in
none:*) export STRATOPS_E2E_NO_PREVIOUS=${previous#none: } ;;
*) export STRATOPS_E2E_PREVIOUS_DIST=${previous% *} STRATOPS_E2E_PREVIOUS_VERSION=${previous#* } ;;
esac
log "release and previous release ready in $(($(date +%s) - start))s"

# --- the tests -----------------------------------------------------------------
start=$(date +%s)
status=0
STRATOPS_E2E_IMG=$IMG STRATOPS_E2E_BIN=$bindir STRATOPS_E2E_DIST=$root/dist \
	go test -tags e2e -count=1 -timeout 30m -v ./test/e2e/ ${E2E_FLAGS:-} || status=$?
log "tests took $(($(date +%s) - start))s"

# The tests tear their cluster down themselves; if the test binary was
# killed before it could, sweep up here and say so.
if ip link show cni0 >/dev/null 2>&1 || ls -d /tmp/stratops-e2e-* >/dev/null 2>&1; then
	log "a cluster was left behind: sweeping it up"
	hack/e2e/sweep.sh "$bindir" || true
	[ "$status" -ne 0 ] || status=1
fi
exit "$status"
