# One image, every stratops binary: /manager (the operator), /eventlogger
# (the service each Strategy runs) and /sampleengine (a stand-in engine that
# plays the standard's chain). Base images are build arguments so that
# they can come from whichever registry the builder is configured for.
ARG BUILDER_IMAGE=golang:1.26
ARG BASE_IMAGE=distroless/static:nonroot

FROM ${BUILDER_IMAGE} AS builder
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
    mkdir -p /out && CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags="-s -X github.com/stratops/stratops/internal/version.Version=$(cat VERSION) -X github.com/stratops/stratops/internal/version.Revision=${REVISION}" \
    -o /out/ ./cmd/manager ./cmd/eventlogger ./cmd/sampleengine

FROM ${BASE_IMAGE}
WORKDIR /
COPY --from=builder /out/ /
USER 65532:65532
ENTRYPOINT ["/manager"]
