# One image, every stratops binary: /manager (the operator), /eventlogger
# (the service each Strategy runs) and /sampleengine (a stand-in engine that
# plays the standard's chain). The builder runs on the build machine's own
# platform and cross-compiles for the target's (no emulation); the image
# itself starts FROM scratch, with its user, CA certificates and /tmp made
# in the builder, so it names no base image. The builder image is a build
# argument: point it at your registry's copy with --build-arg.
# `make release` assembles the same image without a container engine.
ARG BUILDER_IMAGE=golang:1.26

FROM --platform=$BUILDPLATFORM ${BUILDER_IMAGE} AS builder
ARG TARGETOS=linux
ARG TARGETARCH
# The commit, which the build cannot read without .git: --build-arg.
ARG REVISION=
WORKDIR /workspace
COPY go.mod go.sum ./
# Module and build caches persist between builds (BuildKit and podman).
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY internal/ internal/
COPY pkg/ pkg/
COPY VERSION ./
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    mkdir -p /rootfs && CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags="-s -X github.com/stratops/stratops/internal/version.Version=$(cat VERSION) -X github.com/stratops/stratops/internal/version.Revision=${REVISION}" \
    -o /rootfs/ ./cmd/manager ./cmd/eventlogger ./cmd/sampleengine
# What the image needs besides the binaries: the nonroot user (65532), the
# CA certificates (Redis over TLS), a writable /tmp.
RUN mkdir -p /rootfs/etc/ssl/certs /rootfs/tmp /rootfs/home/nonroot && chmod 1777 /rootfs/tmp && \
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >/rootfs/etc/passwd && \
    printf 'root:x:0:\nnonroot:x:65532:\n' >/rootfs/etc/group && \
    cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ && \
    chown 65532:65532 /rootfs/home/nonroot

FROM scratch
ARG REVISION=
COPY --from=builder /rootfs/ /
USER 65532:65532
ENTRYPOINT ["/manager"]
LABEL org.opencontainers.image.title=stratops \
      org.opencontainers.image.revision=${REVISION} \
      org.opencontainers.image.licenses=Apache-2.0
