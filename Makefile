# stratops: a Kubernetes operator for trading strategies that talk through Redis.

IMG ?= stratops:dev
# The release every binary reports (--version, stratops_build_info).
VERSION ?= $(shell cat VERSION)
LDFLAGS ?= -X github.com/stratops/stratops/internal/version.Version=$(VERSION)
KUBE_VERSION ?= v1.37.2
# The lowest Kubernetes stratops supports (ValidatingAdmissionPolicy v1):
# make test installs onto its kube-apiserver too.
KUBE_FLOOR_VERSION ?= v1.30.14
ETCD_VERSION ?= v3.6.16

# Tool versions, built from the Go module proxy into ./bin.
CONTROLLER_TOOLS_VERSION ?= v0.23.0
KUSTOMIZE_VERSION ?= v5.7.1
GOLANGCI_LINT_VERSION ?= v2.15.0
HELM_VERSION ?= v4.3.1
# The Prometheus Operator's CRDs (ServiceMonitor, PodMonitor,
# PrometheusRule), from its Go module, for the chart's dry-run test.
PROMETHEUS_OPERATOR_VERSION ?= v0.89.0
CYCLONEDX_GOMOD_VERSION ?= v1.10.0

LOCALBIN ?= $(shell pwd)/bin
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
KUSTOMIZE ?= $(LOCALBIN)/kustomize-$(KUSTOMIZE_VERSION)
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
HELM ?= $(LOCALBIN)/helm-$(HELM_VERSION)
CYCLONEDX_GOMOD ?= $(LOCALBIN)/cyclonedx-gomod-$(CYCLONEDX_GOMOD_VERSION)
MONITORING_CRDS ?= $(LOCALBIN)/monitoring-crds-$(PROMETHEUS_OPERATOR_VERSION)
ENVTEST_ASSETS ?= $(LOCALBIN)/k8s/$(KUBE_VERSION)
ENVTEST_FLOOR_ASSETS ?= $(LOCALBIN)/k8s/$(KUBE_FLOOR_VERSION)

CONTAINER_TOOL ?= podman
GO_TEST_FLAGS ?=

SHELL = /usr/bin/env bash -o pipefail
.SHELLFLAGS = -ec

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate the CRD and RBAC manifests from the markers (the embedded pod template without its upstream descriptions: hack/crdtrim).
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd:allowDangerousTypes=true,generateEmbeddedObjectMeta=true paths="./api/...;./controllers/..." \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	go run ./hack/crdtrim config/crd/bases/stratops.dev_strategies.yaml

.PHONY: generate
generate: controller-gen ## Generate deepcopy code.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: chart
asyncapi: ## Write docs/standard/asyncapi.yaml (the messaging standard as AsyncAPI 3.0) and the Python package's standard catalog, from the catalog in pkg/messaging.
	go run ./hack/asyncapi docs/standard/asyncapi.yaml
	go run ./hack/sdkcatalog sdk/python/stratops_messaging/standard_catalog.json

chart: manifests ## Regenerate the chart's copies of config/ (CRD, manager role, policies, alert rules, dashboard) and config/prometheus's PrometheusRule.
	go run ./hack/chartgen

.PHONY: apidocs
apidocs: ## Write docs/api.md, the API reference, from the Go types in api/v1.
	go run ./hack/apidocs api/v1 docs/api.md

.PHONY: verify asyncapi
verify: manifests generate chart asyncapi apidocs golangci-lint ## Fail when generated code, the CRD, RBAC, the chart, the AsyncAPI document, the API reference or go.mod are not up to date, or golangci-lint finds a fault.
	go mod tidy
	@if [ -n "$$(git status --porcelain)" ]; then \
		echo "make verify: these files differ from what make manifests generate chart and go mod tidy write; run them and commit:" >&2; \
		git status --porcelain >&2; git --no-pager diff --stat >&2; exit 1; \
	fi
	$(GOLANGCI_LINT) run
	@big=$$(git ls-files -z | xargs -0 -I{} sh -c 'f="{}"; [ -f "$$f" ] && [ $$(stat -c %s "$$f") -gt 1048576 ] && echo "$$f"' | grep -vxF -f hack/large-files-allowed.txt || true); \
	if [ -n "$$big" ]; then echo "make verify: tracked files over 1 MiB (build outputs are not committed; hack/large-files-allowed.txt lists the exceptions):" >&2; echo "$$big" >&2; exit 1; fi

.PHONY: fmt
fmt: ## Run go fmt.
	go fmt ./...

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: lint
lint: golangci-lint ## Run golangci-lint.
	$(GOLANGCI_LINT) run

.PHONY: test
# -count=1: the tests talk to processes (redis-server, kube-apiserver) whose
# behaviour Go's test cache cannot see, so every run runs them.
test: manifests generate chart vet envtest envtest-floor test-packages helm kustomize monitoring-crds rules-test release ## Run all tests against a real kube-apiserver, etcd, redis-server, redis-py, helm and promtool (and check what `make release` wrote).
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" KUBEBUILDER_ASSETS_FLOOR="$(ENVTEST_FLOOR_ASSETS)" HELM="$(HELM)" KUSTOMIZE="$(KUSTOMIZE)" MONITORING_CRDS="$(MONITORING_CRDS)" DIST="$(abspath $(DIST))" \
		go test -count=1 ./... $(GO_TEST_FLAGS)

.PHONY: rules-test
rules-test: test-packages ## Check the alert rules and run their unit tests with promtool.
	promtool check rules config/prometheus/rules.yaml
	cd config/prometheus && promtool test rules rules_test.yaml

.PHONY: e2e
e2e: ## End-to-end tests on a real single-node cluster built here (root; see hack/e2e/run.sh).
	hack/e2e/run.sh

.PHONY: bench
bench: envtest redis ## Run the benchmarks (decoding, event logger throughput and latency, reconcile cost, 200 Strategies to Ready).
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" go test ./pkg/... ./internal/... -run '^$$' -bench . -benchmem
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" go test ./controllers/ -run '^$$' -bench 'Reconcile_' -benchmem
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" go test ./controllers/ -run '^$$' -bench 'Ready_' -benchtime=1x
	go test ./cmd/eventlogger/ -run '^$$' -bench 'Ingest' -benchtime=1x

.PHONY: scale
scale: envtest redis ## N Live Strategies to Ready against plain creates of their children, then under the manager binary alone for its own RSS (STRATOPS_SCALE_N, default 1000; 5000 when asked).
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" STRATOPS_SCALE_N=$${STRATOPS_SCALE_N:-1000} go test ./test/fleet/ -run '^$$' -bench 'Scale_' -benchtime=1x -timeout 60m -v

.PHONY: soak
soak: redis ## The event logger's chaos soak: 25 Redis kill/restart cycles under HTTP and pub/sub load (make test runs 3).
	STRATOPS_SOAK_CYCLES=25 go test -count=1 -run 'TestSoak_' -v ./internal/eventlogger/

##@ Build

.PHONY: build
build: manifests generate fmt vet ## Build the manager, event logger and sample engine binaries into bin/.
	go build -ldflags "$(LDFLAGS)" -o bin/ ./cmd/manager ./cmd/eventlogger ./cmd/sampleengine

.PHONY: run
run: manifests envtest redis ## Run a complete local stratops: control plane, Redis, operator, event loggers, Prometheus with the alerts, samples and sample traffic.
	-hack/ensure-packages.sh prometheus
	go build -ldflags "$(LDFLAGS)" -o bin/stratops-local ./cmd/stratops-local
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" bin/stratops-local

.PHONY: screenshot
screenshot: manifests envtest redis ## Retake the README's Prometheus screenshots (make run's stack, a Redis outage, headless Chromium).
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" hack/screenshot.sh

.PHONY: run-cluster
run-cluster: manifests generate ## Run the manager on this host against the current kubeconfig's cluster.
	go run ./cmd/manager

RELEASE_VERSION ?= $(shell cat VERSION)
RELEASE_IMAGE ?= stratops:$(RELEASE_VERSION)
DIST ?= dist
RELEASE_ARCHS ?= amd64 arm64
# Where the kubectl plugin's archives are downloaded from (the krew
# manifest's URIs); default: dist/ itself.
RELEASE_URL ?= file://$(abspath $(DIST))

.PHONY: release
release: manifests chart kustomize helm cyclonedx-gomod ## Write dist/: the multi-arch OCI image archive, stratops.yaml, the chart, the kubectl plugin's archives and krew manifest, SBOMs and SHA256SUMS (no registry, no container engine).
	rm -rf $(DIST) && mkdir -p $(DIST)/bin
	rev=$$(git rev-parse HEAD 2>/dev/null); for arch in $(RELEASE_ARCHS); do \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch go build -trimpath \
			-ldflags="-s -X github.com/stratops/stratops/internal/version.Version=$(RELEASE_VERSION) -X github.com/stratops/stratops/internal/version.Revision=$$rev" \
			-o $(DIST)/bin/linux-$$arch/ ./cmd/manager ./cmd/eventlogger ./cmd/sampleengine || exit 1; done; \
	go run ./hack/ociimage -version $(RELEASE_VERSION) -revision "$$rev" -bins $(DIST)/bin -out $(DIST)/stratops-$(RELEASE_VERSION).oci.tar
	rev=$$(git rev-parse HEAD 2>/dev/null); for arch in $(RELEASE_ARCHS); do \
		mkdir -p $(DIST)/plugin/linux-$$arch && cp LICENSE $(DIST)/plugin/linux-$$arch/ && \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch go build -trimpath \
			-ldflags="-s -X github.com/stratops/stratops/internal/version.Version=$(RELEASE_VERSION) -X github.com/stratops/stratops/internal/version.Revision=$$rev" \
			-o $(DIST)/plugin/linux-$$arch/kubectl-stratops ./cmd/kubectl-stratops && \
		tar -C $(DIST)/plugin/linux-$$arch --owner=0 --group=0 -czf $(DIST)/kubectl-stratops-$(RELEASE_VERSION)-linux-$$arch.tar.gz kubectl-stratops LICENSE || exit 1; done
	go run ./hack/krew -version $(RELEASE_VERSION) -url "$(RELEASE_URL)" -dist $(DIST)
	for b in manager eventlogger sampleengine; do \
		$(CYCLONEDX_GOMOD) bin -json -version $(RELEASE_VERSION) -output $(DIST)/$$b.cdx.json $(DIST)/bin/linux-amd64/$$b || exit 1; done
	{ $(KUSTOMIZE) build config/default && echo --- && $(KUSTOMIZE) build config/policy; } | sed 's|stratops:dev|$(RELEASE_IMAGE)|g' > $(DIST)/stratops.yaml
	tmp=$$(mktemp -d) && cp -r charts/stratops "$$tmp/" && \
		sed -i 's|image: stratops:dev|image: $(RELEASE_IMAGE)|' "$$tmp/stratops/Chart.yaml" && \
		$(HELM) package "$$tmp/stratops" --version $(RELEASE_VERSION) --app-version $(RELEASE_VERSION) -d $(DIST) >/dev/null && rm -rf "$$tmp"
	rm -rf $(DIST)/bin $(DIST)/plugin
	cd $(DIST) && sha256sum $$(ls | grep -v SHA256SUMS) > SHA256SUMS

.PHONY: docker-build
docker-build: ## Build the image with $(CONTAINER_TOOL).
	$(CONTAINER_TOOL) build --build-arg REVISION=$$(git rev-parse HEAD 2>/dev/null) -t $(IMG) .

##@ Deployment

.PHONY: install
install: manifests kustomize ## Install the CRD and the engine admission policy into the current kubeconfig's cluster.
	$(KUSTOMIZE) build config/crd | kubectl apply --server-side -f -
	$(KUSTOMIZE) build config/policy | kubectl apply --server-side -f -

.PHONY: uninstall
uninstall: manifests kustomize ## Remove the CRD (and every Strategy) and the admission policy from the cluster.
	$(KUSTOMIZE) build config/policy | kubectl delete --ignore-not-found -f -
	$(KUSTOMIZE) build config/crd | kubectl delete --ignore-not-found -f -

.PHONY: deploy
# The image is set in a copy of config/, so the tree stays as committed.
deploy: manifests kustomize ## Deploy the operator with kustomize (config/default) using IMG.
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && cp -r config "$$tmp/" && \
	(cd "$$tmp/config/manager" && $(KUSTOMIZE) edit set image controller=$(IMG)) && \
	$(KUSTOMIZE) build "$$tmp/config/default" | kubectl apply --server-side -f - && \
	$(KUSTOMIZE) build "$$tmp/config/policy" | kubectl apply --server-side -f -

.PHONY: undeploy
undeploy: kustomize ## Remove the operator deployed by make deploy.
	$(KUSTOMIZE) build config/policy | kubectl delete --ignore-not-found -f -
	$(KUSTOMIZE) build config/default | kubectl delete --ignore-not-found -f -

##@ Dependencies

$(LOCALBIN):
	mkdir -p $(LOCALBIN)

.PHONY: envtest
envtest: ## Build kube-apiserver and etcd for envtest from source into bin/ (once).
	KUBE_VERSION=$(KUBE_VERSION) ETCD_VERSION=$(ETCD_VERSION) hack/build-envtest.sh kube-apiserver etcd >/dev/null

.PHONY: envtest-floor
envtest-floor: ## Build kube-apiserver and etcd of the lowest supported Kubernetes (KUBE_FLOOR_VERSION) into bin/ (once): make test installs onto it.
	KUBE_VERSION=$(KUBE_FLOOR_VERSION) ETCD_VERSION=$(ETCD_VERSION) hack/build-envtest.sh kube-apiserver etcd >/dev/null

.PHONY: redis
redis: ## Make sure redis-server is installed (apt-get when root).
	hack/ensure-packages.sh redis-server

.PHONY: test-packages
test-packages: ## Make sure the Debian packages the tests use are installed (apt-get when root).
	hack/ensure-packages.sh redis-server redis-tools python3-redis python3-venv python3-setuptools python3-wheel prometheus

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Build controller-gen into bin/.
$(CONTROLLER_GEN): | $(LOCALBIN)
	$(call go-install-tool,$(CONTROLLER_GEN),sigs.k8s.io/controller-tools/cmd/controller-gen,$(CONTROLLER_TOOLS_VERSION))

.PHONY: kustomize
kustomize: $(KUSTOMIZE) ## Build kustomize into bin/.
$(KUSTOMIZE): | $(LOCALBIN)
	$(call go-install-tool,$(KUSTOMIZE),sigs.k8s.io/kustomize/kustomize/v5,$(KUSTOMIZE_VERSION))

.PHONY: helm
helm: $(HELM) ## Build helm into bin/.
$(HELM): | $(LOCALBIN)
	$(call go-install-tool,$(HELM),helm.sh/helm/v4/cmd/helm,$(HELM_VERSION))

.PHONY: monitoring-crds
monitoring-crds: $(MONITORING_CRDS) ## Copy the Prometheus Operator's CRDs from its Go module into bin/.
$(MONITORING_CRDS): | $(LOCALBIN)
	dir=$$(go mod download -json github.com/prometheus-operator/prometheus-operator@$(PROMETHEUS_OPERATOR_VERSION) | sed -n 's/^\t"Dir": "\(.*\)",$$/\1/p') && \
	mkdir -p $@.tmp && for k in servicemonitors podmonitors prometheusrules; do \
		cp "$$dir/example/prometheus-operator-crd/monitoring.coreos.com_$$k.yaml" $@.tmp/; done && \
	chmod -R u+w $@.tmp && mv $@.tmp $@

.PHONY: cyclonedx-gomod
cyclonedx-gomod: $(CYCLONEDX_GOMOD) ## Build cyclonedx-gomod (SBOMs from the binaries' build info) into bin/.
$(CYCLONEDX_GOMOD): | $(LOCALBIN)
	$(call go-install-tool,$(CYCLONEDX_GOMOD),github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod,$(CYCLONEDX_GOMOD_VERSION))

.PHONY: golangci-lint
golangci-lint: $(GOLANGCI_LINT) ## Build golangci-lint into bin/.
$(GOLANGCI_LINT): | $(LOCALBIN)
	$(call go-install-tool,$(GOLANGCI_LINT),github.com/golangci/golangci-lint/v2/cmd/golangci-lint,$(GOLANGCI_LINT_VERSION))

# go-install-tool builds $2@$3 into bin/ under a versioned name, $1.
define go-install-tool
@[ -f "$(1)" ] || { \
set -e; \
package=$(2)@$(3) ;\
echo "Building $${package}" ;\
rm -f $(1) ;\
GOBIN=$(LOCALBIN) go install $${package} ;\
mv $(LOCALBIN)/$$(basename "$$(echo "$(2)" | sed "s/\/v[0-9]*$$//")") $(1) ;\
}
endef
