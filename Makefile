# prowjob-dispatcher. `make help` lists the targets.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c

BIN        ?= bin/prowjob-dispatcher
OUT        ?= _output
EXAMPLES   ?= docs/examples
GO         ?= go
GOTESTFLAGS ?=
BENCHTIME  ?= 1x
CONTROLLER_GEN ?= $(GO) run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.19.0
# The kubernetes state backend's API types, their deepcopy code and their CRDs.
API_PKG    := dispatch/kubestate/v1alpha1
CRD_DIR    := manifests/crds

.PHONY: help build image-binary image image-push image-check run demo test unit test-rules e2e e2e-assets verify verify-generated generate bench fuzz load load-drains load-ha clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-17s %s\n", $$1, $$2}'

# What `prowjob-dispatcher version` and the build_info metric report.
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION   ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS    := -s -w -X main.version=$(VERSION) -X main.revision=$(REVISION)
# make image: the image's name and tags (the manifests name prowjob-dispatcher:latest),
# its architecture, and its creation time (the commit's, so a rebuild is identical).
IMAGE_NAME ?= prowjob-dispatcher
IMAGE_TAGS ?= latest $(VERSION)
ARCH       ?= $(shell $(GO) env GOARCH)
CREATED    ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
# The static linux binary the image holds; the e2e suite runs the same one.
IMAGE_BIN  := $(OUT)/image-bin/linux-$(ARCH)/prowjob-dispatcher

# build and image-binary build alike (static, -trimpath), so one shares the other's build cache.
build: ## build bin/prowjob-dispatcher (static, like the image's)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/prowjob-dispatcher

image-binary: ## build the image's static binary (CGO_ENABLED=0, linux/$(ARCH))
	CGO_ENABLED=0 GOOS=linux GOARCH=$(ARCH) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(IMAGE_BIN) ./cmd/prowjob-dispatcher

# No container daemon and no base image pulled: cmd/image-build writes the
# layers itself (manifests/image/Containerfile builds the same with podman or docker).
# Where the machine has git, its git (with the HTTPS transport and their shared
# libraries) goes in a layer too: the Git backup and the job config from Git run it.
IMAGE_FLAGS ?= $(if $(wildcard /usr/bin/git),--with-git)
image: image-binary ## build the container image: OCI layout _output/image and docker archive _output/prowjob-dispatcher.tar
	$(GO) run ./cmd/image-build --binary $(IMAGE_BIN) --layout $(OUT)/image --archive $(OUT)/$(IMAGE_NAME).tar $(IMAGE_FLAGS) \
	  --arch $(ARCH) --version $(VERSION) --revision $(REVISION) --created $(CREATED) $(foreach t,$(IMAGE_TAGS),--tag $(IMAGE_NAME):$(t))
	@du -sh $(OUT)/image $(OUT)/$(IMAGE_NAME).tar

image-push: image-binary ## push the image to IMAGE_REPO (e.g. registry.example.com/ci/prowjob-dispatcher) with IMAGE_TAGS; credentials from docker login
	@if [ -z "$(IMAGE_REPO)" ]; then echo 'make image-push needs IMAGE_REPO=registry/repository'; exit 1; fi
	$(GO) run ./cmd/image-build --binary $(IMAGE_BIN) --layout '' $(IMAGE_FLAGS) \
	  --arch $(ARCH) --version $(VERSION) --revision $(REVISION) --created $(CREATED) $(foreach t,$(IMAGE_TAGS),--push $(IMAGE_REPO):$(t))

image-check: image ## read the built image back: entrypoint, user, and its binary's `version`
	$(GO) test -count=1 -run '^TestImage$$' ./cmd/image-build -args -layout $(abspath $(OUT)/image) -tag $(IMAGE_NAME):latest -revision $(REVISION)

# The local setup: example configs, demand from a file, self-signed TLS, state
# under _output/. No cluster and no Prometheus needed.
SERVE_ARGS = serve \
	--dispatcher-config $(EXAMPLES)/dispatcher.yaml \
	--cluster-config $(EXAMPLES)/clusters.yaml \
	--job-config $(EXAMPLES)/jobs \
	--demand-file $(EXAMPLES)/demand.yaml \
	--state-dir $(OUT)/state \
	--cert-dir $(OUT)/certs --self-signed --tls-hosts localhost,127.0.0.1 \
	--token-file $(OUT)/token

$(OUT)/token:
	@mkdir -p $(OUT) && head -c 24 /dev/urandom | base64 | tr -d '/+=' > $@ && chmod 600 $@

run: build $(OUT)/token ## run the dispatcher locally on the example configs (Ctrl-C stops it)
	$(BIN) $(SERVE_ARGS)

demo: build $(OUT)/token ## start it locally, ask it a few questions, stop it
	@if curl -fsS localhost:8081/readyz >/dev/null 2>&1; then echo 'a dispatcher already runs on localhost:8081 (make run?): stop it first'; exit 1; fi; \
	rm -rf $(OUT)/demo-state; \
	$(BIN) $(SERVE_ARGS) --state-dir $(OUT)/demo-state > $(OUT)/demo.log 2>&1 & pid=$$!; trap 'kill $$pid 2>/dev/null; wait $$pid 2>/dev/null || true' EXIT; \
	for i in $$(seq 1 50); do curl -fsS localhost:8081/readyz >/dev/null 2>&1 && break; sleep 0.2; done; \
	if ! kill -0 $$pid 2>/dev/null; then echo 'the dispatcher did not start:'; tail -n 3 $(OUT)/demo.log; exit 1; fi; \
	if jq -n '"" | @base64d' >/dev/null 2>&1; then show() { jq -r "$$1"; }; echo '(answers condensed with jq; the server log is in $(OUT)/demo.log)'; \
	else show() { cat; }; echo '(no jq: raw JSON answers; the server log is in $(OUT)/demo.log)'; fi; \
	echo '$$ curl localhost:8081/readyz'; curl -sS localhost:8081/readyz; \
	echo "$$ curl -X POST localhost:8080/api/v1/schedule -d '{\"job\":\"pull-ci-openshift-origin-main-e2e-aws-arm64\"}'"; \
	curl -sS -X POST localhost:8080/api/v1/schedule -d '{"job":"pull-ci-openshift-origin-main-e2e-aws-arm64"}'; \
	echo '$$ curl localhost:8080/api/v1/assignments/pull-ci-openshift-origin-main-unit'; \
	curl -sS localhost:8080/api/v1/assignments/pull-ci-openshift-origin-main-unit | show '"\(.job) -> \(.cluster) (\(.reason): \(.detail); file \(.file))"'; \
	echo '$$ curl localhost:8080/api/v1/clusters'; \
	curl -sS localhost:8080/api/v1/clusters | show 'def pad(n): tostring | . + (" " * ([n - length, 1] | max)); '\
	'def f2: (. * 100 | round / 100 | tostring) | if contains(".") then . + "0" else . + ".00" end | .[0:index(".") + 3]; '\
	'"CLUSTER    JOBS  LOAD    BALANCED  TARGET  LOAD/TARGET", (.[] | (.name | pad(11)) + (.jobs | pad(6)) '\
	'+ (.demand | round | pad(8)) + (.balancedDemand | round | pad(10)) + (.target | round | pad(8)) '\
	'+ (if .blocked then "- (blocked)" elif .manual then "- (manual)" else (.ratio | f2) end))'; \
	echo "$$ curl -X POST -H \"Authorization: Bearer \$$(cat $(OUT)/token)\" localhost:8080/api/v1/reschedule -d '{\"job\":\"pull-ci-openshift-origin-main-unit\",\"reason\":\"demo\",\"ttl\":\"1h\"}'"; \
	curl -sS -X POST -H "Authorization: Bearer $$(cat $(OUT)/token)" localhost:8080/api/v1/reschedule \
	  -d '{"job":"pull-ci-openshift-origin-main-unit","reason":"demo","ttl":"1h"}' | show '"\(.job): \(.from) -> \(.to), override until \(.override.expires | .[0:19])Z"'; \
	echo "$$ curl --cacert $(OUT)/certs/ca.crt -H 'Content-Type: application/json' https://localhost:9443/mutate-prowjobs -d @$(EXAMPLES)/admissionreview.json"; \
	curl -sS --cacert $(OUT)/certs/ca.crt -H 'Content-Type: application/json' https://localhost:9443/mutate-prowjobs -d @$(EXAMPLES)/admissionreview.json \
	  | show '.response | "allowed: \(.allowed), patch: \(.patch // "" | @base64d)"'

test: unit test-rules image-check e2e ## run every test: unit tests with -race, the alerts' promtool tests, make image and its check, then the e2e suite (installs what it needs)

unit: ## unit tests with the race detector
	$(GO) test -race -count=1 $(GOTESTFLAGS) ./...

# The alerts' promtool unit tests and the check of the dashboard's queries
# (unit runs them too where promtool is installed, and skips them where it
# is not; here they must run).
test-rules: ## promtool unit tests of every alert, and promtool's check of the dashboard's queries (installs promtool)
	command -v promtool >/dev/null 2>&1 || e2e/hack/install-assets.sh >/dev/null
	PROMTOOL_REQUIRED=1 $(GO) test -count=1 $(GOTESTFLAGS) ./internal/monitoring/

e2e: image-binary ## end-to-end tests against a real kube-apiserver, etcd, Prometheus and Prow's own binaries (and the kubestate backend's tests against the API server), on the image's binary
	assets="$$(e2e/hack/install-assets.sh | tail -n 1)"; \
	KUBEBUILDER_ASSETS="$$assets" $(GO) test -race -count=1 -timeout 10m $(GOTESTFLAGS) ./dispatch/kubestate/... ./webhook/certs/...; \
	E2E=1 E2E_BINARY=$(abspath $(IMAGE_BIN)) KUBEBUILDER_ASSETS="$$assets" $(GO) test -count=1 -timeout 25m -v $(GOTESTFLAGS) ./e2e/...

verify: verify-generated ## gofmt, go vet, and generated files up to date
	@out="$$(gofmt -l $$(git ls-files '*.go'))"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# gen-into DIR: the deepcopy code as DIR/zz_generated.deepcopy.go, the CRDs and
# their kustomization.yaml under DIR/crds. generate writes them in place;
# verify-generated writes them to a temporary DIR and diffs.
define gen-into
mkdir -p $(1)/crds; \
	$(CONTROLLER_GEN) object output:object:stdout paths=./$(API_PKG)/... > $(1)/zz_generated.deepcopy.go; \
	$(CONTROLLER_GEN) crd:crdVersions=v1 paths=./$(API_PKG)/... output:crd:artifacts:config=$(1)/crds; \
	{ echo '# Generated by make generate from $(API_PKG): the CRDs of the kubernetes state backend.'; \
	  echo 'apiVersion: kustomize.config.k8s.io/v1beta1'; echo 'kind: Kustomization'; echo 'resources:'; \
	  (cd $(1)/crds && ls prowjob-dispatcher.io_*.yaml | LC_ALL=C sort | sed 's/^/- /'); } > $(1)/crds/kustomization.yaml
endef

generate: ## regenerate deepcopy and the CRDs from dispatch/kubestate/v1alpha1 with controller-gen
	@tmp="$$(mktemp -d)"; trap 'rm -rf "$$tmp"' EXIT; \
	$(call gen-into,$$tmp); \
	cmp -s "$$tmp/zz_generated.deepcopy.go" $(API_PKG)/zz_generated.deepcopy.go || cp "$$tmp/zz_generated.deepcopy.go" $(API_PKG)/zz_generated.deepcopy.go; \
	rm -rf $(CRD_DIR) && cp -R "$$tmp/crds" $(CRD_DIR)

verify-generated: ## check that make generate would change nothing
	@tmp="$$(mktemp -d)"; trap 'rm -rf "$$tmp"' EXIT; \
	$(call gen-into,$$tmp); \
	if ! diff -u $(API_PKG)/zz_generated.deepcopy.go "$$tmp/zz_generated.deepcopy.go" || ! diff -ru $(CRD_DIR) "$$tmp/crds"; then \
	  echo 'generated files are stale: run make generate'; exit 1; fi

bench: ## the engine, cache and admission benchmarks (BENCHTIME=1x by default)
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./dispatch/... ./webhook/...

fuzz: ## fuzz both config parsers, the job config parser (against prow's) and admission's ProwJob decode (against the full one) for 30 s each
	$(GO) test -run '^$$' -fuzz FuzzParseDispatcher -fuzztime 30s ./dispatch/config
	$(GO) test -run '^$$' -fuzz FuzzParseClusters -fuzztime 30s ./dispatch/config
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 30s ./dispatch/jobs/internal/fastyaml
	$(GO) test -run '^$$' -fuzz FuzzDecodeProwJob -fuzztime 30s ./webhook/admission

load: ## admission load test over TLS: 1,000 req/s for 60 s against a 50,000-job table and 60 s against a null webhook, alternating in 10 s windows; reports the ratio of the p99s
	$(GO) test -count=1 -v -run 'TestLoad$$' -timeout 5m ./webhook/loadtest -args -rate 1000 -duration 60s -jobs 50000 -window 10s

load-drains: ## make load, and the same load while a drain loop drains and undrains a cluster every 500 ms; reports new jobs' admission latency apart
	$(GO) test -count=1 -v -run 'TestLoad$$' -timeout 10m ./webhook/loadtest -args -rate 1000 -duration 60s -jobs 50000 -window 10s -drain-every 500ms

load-ha: ## make load with the dispatcher's state in a real kube-apiserver, as one replica of --state-backend=kubernetes (installs the e2e assets)
	assets="$$(INSTALL_PROW=0 e2e/hack/install-assets.sh | tail -n 1)"; \
	KUBEBUILDER_ASSETS="$$assets" $(GO) test -count=1 -v -run 'TestLoad$$' -timeout 5m ./webhook/loadtest -args -rate 1000 -duration 60s -jobs 50000 -kube

clean: ## remove build and run output
	rm -rf bin $(OUT)
