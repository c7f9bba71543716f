#!/usr/bin/env bash
# Builds the images the end-to-end cluster runs, with podman and without any
# registry, and saves them as OCI archives for the node's containerd:
#   - a local stand-in for the Dockerfile's builder image, under the short
#     name the Dockerfile uses (resolved from local storage, --pull=never):
#       golang:1.26               Debian bookworm (debootstrap, the mirror apt
#                                 already uses) + this machine's Go toolchain
#     (the image itself starts FROM scratch)
#   - the pod sandbox image, built from hack/e2e/pause (FROM scratch)
#   - redis:7.0, the image config/samples/redis.yaml names: a stand-in made
#     of Debian's redis-server (this machine's, with the libraries it
#     links), so that the e2e applies config/samples as the README says
#   - the project's image, built from the project's own Dockerfile (the
#     Strategies' sample engines run it; the operator runs the release's
#     image, from dist/)
# Usage: hack/e2e/images.sh <image name> <output dir>   everything
#        hack/e2e/images.sh --bases                     the stand-ins and the
#                                                       sandbox image only
# Each image is built once: a stand-in that exists is reused, and podman's
# layer cache makes an unchanged project image a cache hit.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
bases_only=false
if [ "${1:-}" = --bases ]; then
	bases_only=true
	img="" out=$root/bin/e2e/images
else
	img=${1:?image name}
	out=${2:?output dir}
fi
work=$root/bin/e2e/build
mkdir -p "$out" "$work"
out=$(cd "$out" && pwd)
log() { printf '[e2e images] %s\n' "$*" >&2; }

# podman on this kind of host: cgroupfs (no systemd), runc, file events.
export CONTAINERS_CONF=$work/containers.conf
cat >"$CONTAINERS_CONF" <<'CONF'
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
CONF
podman_build() {
	podman build --pull=never --runtime runc --network host \
		--ulimit nofile=1024:1024 --ulimit nproc=1024:1024 "$@"
}

# --- golang:1.26 -----------------------------------------------------------
builder=localhost/golang:1.26
if ! podman image exists "$builder"; then
	start=$(date +%s)
	mirror=$(sed -n 's/^URIs: *\([^ ]*debian\)$/\1/p; s/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*debian\) .*/\2/p' \
		/etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null | sed -n 1p || true)
	[ -n "$mirror" ] || { log "no Debian mirror in the apt sources: cannot debootstrap the builder"; exit 1; }
	rootfs=$work/builder-rootfs
	rm -rf "$rootfs"
	log "debootstrap bookworm (minbase) for the builder stand-in"
	debootstrap --variant=minbase --include=ca-certificates bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
		{ tail -n 20 "$work/debootstrap.log" >&2; exit 1; }
	goroot=$(go env GOROOT)
	log "adding the Go toolchain from $goroot"
	mkdir -p "$rootfs/usr/local/go" "$rootfs/go"
	cp -a "$goroot/." "$rootfs/usr/local/go/"
	# Trust what this machine trusts (the module proxy is reached through it).
	cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
	tar -C "$rootfs" -c . | podman import \
		--change 'ENV PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		--change 'ENV GOPATH=/go' --change 'WORKDIR /go' - "$builder" >/dev/null
	rm -rf "$rootfs"
	log "built $builder in $(($(date +%s) - start))s"
fi

# --- the pod sandbox image ---------------------------------------------------
pause=localhost/stratops-e2e/pause:1
if ! podman image exists "$pause"; then
	p=$work/pause-rootfs
	rm -rf "$p" && mkdir -p "$p"
	(cd "$root" && CGO_ENABLED=0 go build -trimpath -ldflags=-s -o "$p/pause" ./hack/e2e/pause)
	tar -C "$p" -c . | podman import --change 'ENTRYPOINT ["/pause"]' --change 'USER 65535:65535' - "$pause" >/dev/null
	rm -rf "$p"
	log "built $pause"
fi

# --- redis:7.0 ----------------------------------------------------------------
# Saved under a name of its own; the cluster tags it redis:7.0 on import.
redis=localhost/stratops-e2e/redis:7.0
if ! podman image exists "$redis"; then
	r=$work/redis-rootfs
	rm -rf "$r" && mkdir -p "$r/usr/local/bin" "$r/data" "$r/tmp"
	chmod 1777 "$r/tmp" "$r/data"
	cp -L "$(command -v redis-server)" "$r/usr/local/bin/redis-server"
	for lib in $(ldd "$(command -v redis-server)" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
		mkdir -p "$r$(dirname "$lib")"
		cp -L "$lib" "$r$lib"
	done
	tar -C "$r" -c . | podman import --change 'ENV PATH=/usr/local/bin' --change 'WORKDIR /data' \
		--change 'CMD ["redis-server"]' - "$redis" >/dev/null
	rm -rf "$r"
	log "built $redis (a stand-in: Debian's redis-server)"
fi

$bases_only && exit 0

# --- the project's image -------------------------------------------------------
start=$(date +%s)
log "building $img from the Dockerfile (seconds when cached; several minutes the first time)"
podman_build --build-arg TARGETARCH="$(go env GOARCH)" --build-arg REVISION="$(git -C "$root" rev-parse HEAD 2>/dev/null)" -t "$img" "$root" >"$work/image-build.log" 2>&1 || { tail -n 40 "$work/image-build.log" >&2; exit 1; }
log "built $img in $(($(date +%s) - start))s"

# --- archives for containerd ---------------------------------------------------
save() { # name file
	local id
	id=$(podman image inspect --format '{{.Id}}' "$1")
	if [ -f "$out/$2" ] && [ "$(cat "$out/$2.id" 2>/dev/null)" = "$id" ]; then
		return 0
	fi
	rm -f "$out/$2"
	podman save --format oci-archive -o "$out/$2.tmp" "$1"
	mv "$out/$2.tmp" "$out/$2"
	echo "$id" >"$out/$2.id"
	log "saved $1 to $out/$2"
}
save "$pause" pause.tar
save "$img" stratops.tar
save "$redis" redis.tar
