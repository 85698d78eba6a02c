# Portcullis: the two commands a newcomer needs are `make run` and `make test`.

GO          ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
DATA_DIR    ?= data
SSH_ADDR    ?= 127.0.0.1:2222
API_ADDR    ?= 127.0.0.1:8443
PG_ADDR     ?= 127.0.0.1:5433
BIN         := bin/portcullis
# The version and commit `portcullis version` prints; a plain `go build`
# still reports the commit (from the go command's VCS stamp) as "devel".
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT      ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS     := -X github.com/portcullis/portcullis/internal/buildinfo.Version=$(VERSION) \
               -X github.com/portcullis/portcullis/internal/buildinfo.Commit=$(COMMIT)

.PHONY: run build assets check-assets test test-deps lint bench fuzz clean

build: assets
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/portcullis

## assets: the web console (web/) built into internal/web/dist, which the binary embeds.
## The built files are committed, so that `go build ./cmd/portcullis` and `go install`
## alone give a working console; after changing web/, run `make assets` and commit
## internal/web/dist with the change. npm ci runs only when package-lock.json is newer
## than the last install; the bundler only when a source is newer than the last build.
WEB_STAMP := web/node_modules/.portcullis-npm-ci
WEB_SRC   := $(shell find web/src -type f 2>/dev/null) web/build.mjs
WEB_INDEX := internal/web/dist/index.html

assets: $(WEB_INDEX)

$(WEB_STAMP): web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(WEB_INDEX): $(WEB_STAMP) $(WEB_SRC)
	cd web && node build.mjs

## check-assets: fail when the committed internal/web/dist is not what web/ builds to
## (the bundle is deterministic: rebuilt into a temporary directory, it must be equal)
check-assets: $(WEB_STAMP)
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	(cd web && PORTCULLIS_WEB_OUT="$$tmp" node build.mjs >/dev/null) && \
	cp internal/web/dist/README internal/web/dist/.gitkeep "$$tmp"/ && \
	if ! diff -r "$$tmp" internal/web/dist >/dev/null; then \
	  diff -r "$$tmp" internal/web/dist | head -20; \
	  echo "internal/web/dist is stale: run 'make assets' and commit internal/web/dist"; exit 1; \
	fi

## run: build and start the gateway on loopback with embedded defaults
run: build
	PORTCULLIS_DATA_DIR=$(DATA_DIR) ./$(BIN) serve --ssh-addr $(SSH_ADDR) --api-addr $(API_ADDR) --pg-addr $(PG_ADDR) --local-target

## test: install missing test dependencies, then vet, lint and run every test with -race
test: test-deps check-assets lint
	$(GO) test -race -count=1 -timeout 15m ./...

test-deps:
	./scripts/install-test-deps.sh

lint:
	@# internal/sshx is x/crypto as released (plus SSHX.patch), formatted as upstream left it.
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' ':!:internal/sshx/*' 2>/dev/null || find . -name '*.go' -not -path './internal/sshx/*')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed on: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

## bench: Go benchmarks plus the gateway-vs-direct OpenSSH comparison
## (the comparison, bench/compare_test.go behind the `bench` build tag, runs sshd and
## creates a unix user, so it needs root; without root it is skipped with a note),
## then pgbench and psql through the PostgreSQL front vs direct (bench/pg_test.go),
## then vSphere SOAP calls through the web API front vs direct to vcsim (bench/http_test.go),
## then kubectl get pods and pod lists through the Kubernetes front vs direct (bench/kube_test.go),
## then recording's CPU with recordings in S3 (versitygw) vs the local store (bench/s3_test.go)
bench: build test-deps
	$(GO) test -run '^$$' -bench . -benchmem ./...
	@if [ "$$(id -u)" -ne 0 ]; then \
	  echo "bench: skipping the gateway-vs-direct OpenSSH comparison: it runs sshd and creates a unix user, so it needs root (sudo make bench)"; \
	else \
	  echo "PORTCULLIS_BIN=$(CURDIR)/$(BIN) $(GO) test -tags bench -run TestCompare -v -count=1 -timeout 25m ./bench/"; \
	  PORTCULLIS_BIN=$(CURDIR)/$(BIN) $(GO) test -tags bench -run TestCompare -v -count=1 -timeout 25m ./bench/; \
	  echo "$(GO) test -tags bench -run TestPGCompare -v -count=1 -timeout 20m ./bench/"; \
	  $(GO) test -tags bench -run TestPGCompare -v -count=1 -timeout 20m ./bench/; \
	  echo "$(GO) test -tags bench -run TestHTTPCompare -v -count=1 -timeout 10m ./bench/"; \
	  $(GO) test -tags bench -run TestHTTPCompare -v -count=1 -timeout 10m ./bench/; \
	  echo "$(GO) test -tags bench -run TestKubeCompare -v -count=1 -timeout 10m ./bench/"; \
	  $(GO) test -tags bench -run TestKubeCompare -v -count=1 -timeout 10m ./bench/; \
	  echo "PORTCULLIS_BIN=$(CURDIR)/$(BIN) $(GO) test -tags bench -run TestRecordingS3 -v -count=1 -timeout 10m ./bench/"; \
	  PORTCULLIS_BIN=$(CURDIR)/$(BIN) $(GO) test -tags bench -run TestRecordingS3 -v -count=1 -timeout 10m ./bench/; \
	fi

## fuzz: run each fuzz target for a while (FUZZTIME=30s per target)
FUZZTIME ?= 30s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

clean:
	rm -rf bin
