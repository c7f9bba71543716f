#!/usr/bin/env bash
# Builds the control-plane binaries that envtest (and the local runner) use,
# from source through the Go module proxy, into bin/k8s/<version>/:
#   kube-apiserver  from k8s.io/kubernetes, its staging modules replaced by the
#                   published k8s.io/* modules of the same minor version
#   etcd            from go.etcd.io/etcd/server/v3 (the module root is main)
# A binary that is already there is reused; nothing is downloaded from
# anywhere but the module proxy.
#
# Usage: hack/build-envtest.sh [binary...]   (default: kube-apiserver etcd)
# Env:   KUBE_VERSION (v1.37.2), ETCD_VERSION (v3.6.16), ENVTEST_DIR,
#        STRATOPS_CACHE_DIR (default ~/.cache/stratops)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
KUBE_VERSION=${KUBE_VERSION:-v1.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
# k8s.io/kubernetes v1.X.Y publishes its staging modules as v0.X.Y.
STAGING_VERSION=v0.${KUBE_VERSION#v1.}
out=${ENVTEST_DIR:-$root/bin/k8s/$KUBE_VERSION}
work=$root/bin/.build/kubernetes-$KUBE_VERSION
# Built binaries are also kept in the user's cache, so that another clone on
# the same machine (CI runs in a fresh one) does not build them again.
cache=${STRATOPS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/stratops}/k8s/$KUBE_VERSION

bins=("$@")
[ ${#bins[@]} -gt 0 ] || bins=(kube-apiserver etcd)

log() { printf '[build-envtest] %s\n' "$*" >&2; }

mkdir -p "$out"

kube_module() {
	# The helper module: requires k8s.io/kubernetes and points every staging
	# module at its published version instead of ./staging/...
	[ -f "$work/go.mod" ] && return 0
	mkdir -p "$work"
	log "preparing helper module for k8s.io/kubernetes $KUBE_VERSION"
	local modfile
	modfile=$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" |
		sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
	[ -f "$modfile" ] || { log "cannot read go.mod of k8s.io/kubernetes@$KUBE_VERSION"; exit 1; }
	{
		echo "module stratops.dev/envtest-build"
		echo
		echo "go 1.26.0"
		echo
		echo "require k8s.io/kubernetes $KUBE_VERSION"
		echo
		echo "replace ("
		sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\t\1 => \1 '"$STAGING_VERSION"'#p' "$modfile"
		echo ")"
	} >"$work/go.mod.tmp"
	mv "$work/go.mod.tmp" "$work/go.mod"
}

build_kube() {
	local name=$1
	kube_module
	log "building $name $KUBE_VERSION from source (first time: several minutes)"
	local minor=${KUBE_VERSION#v1.}
	minor=${minor%%.*}
	local v=k8s.io/component-base/version
	(cd "$work" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath \
		-ldflags="-s -X $v.gitVersion=$KUBE_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean" \
		-o "$out/$name.tmp" "k8s.io/kubernetes/cmd/$name")
	mv "$out/$name.tmp" "$out/$name"
}

build_etcd() {
	local ework=$root/bin/.build/etcd-$ETCD_VERSION
	mkdir -p "$ework"
	if [ ! -f "$ework/go.mod" ]; then
		printf 'module stratops.dev/etcd-build\n\ngo 1.26.0\n\nrequire go.etcd.io/etcd/server/v3 %s\n' \
			"$ETCD_VERSION" >"$ework/go.mod"
	fi
	log "building etcd $ETCD_VERSION from source"
	(cd "$ework" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags=-s \
		-o "$out/etcd.tmp" go.etcd.io/etcd/server/v3)
	mv "$out/etcd.tmp" "$out/etcd"
}

mkdir -p "$cache" 2>/dev/null || cache=""
for b in "${bins[@]}"; do
	if [ -x "$out/$b" ]; then
		if [ -n "$cache" ] && [ ! -x "$cache/$b" ]; then
			cp "$out/$b" "$cache/$b.tmp.$$" && mv "$cache/$b.tmp.$$" "$cache/$b" || true
		fi
		continue
	fi
	if [ -n "$cache" ] && [ -x "$cache/$b" ] && "$cache/$b" --version >/dev/null 2>&1; then
		cp "$cache/$b" "$out/$b.tmp" && mv "$out/$b.tmp" "$out/$b"
		log "reused $b from $cache"
		continue
	fi
	start=$(date +%s)
	case $b in
	etcd) build_etcd ;;
	*) build_kube "$b" ;;
	esac
	log "built $out/$b in $(($(date +%s) - start))s"
	if [ -n "$cache" ]; then
		cp "$out/$b" "$cache/$b.tmp.$$" && mv "$cache/$b.tmp.$$" "$cache/$b" || true
	fi
done
echo "$out"
