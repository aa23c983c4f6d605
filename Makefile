# smtrain Makefile. `make demo` and `make test` do all set-up on a fresh
# Debian machine (see README.md).

GO      ?= go
BIN     := bin/smtrain
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.Version=$(VERSION)

# Use OpenBLAS (cgo, build tag openblas) when Debian's libopenblas-dev is
# installed; otherwise the pure-Go gonum BLAS. NOBLAS=1 forces pure Go.
HAVE_OPENBLAS := $(shell test -z "$(NOBLAS)" && (test -e /usr/include/x86_64-linux-gnu/cblas.h -o -e /usr/include/cblas.h) && ldconfig -p 2>/dev/null | grep -q 'libopenblas\.so ' && echo yes)
ifeq ($(HAVE_OPENBLAS),yes)
TAGS := -tags openblas
export CGO_LDFLAGS := -lopenblas
endif

# The race detector needs cgo and a C compiler.
HAVE_RACE := $(shell test "$$($(GO) env CGO_ENABLED 2>/dev/null)" = 1 && command -v gcc >/dev/null && echo yes)

# One OpenBLAS thread per Go worker: the kernels split work across cores.
export OPENBLAS_NUM_THREADS ?= 1

.PHONY: all build test test-run test-long lint bench demo dojo deps clean

all: build

# deps installs the Debian packages smtrain uses (needs root; skipped when
# they are present).
deps:
	@./scripts/deps.sh

build:
	$(GO) build $(TAGS) -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/smtrain

test: deps
	$(MAKE) --no-print-directory test-run

# test-run is `make test` without the dependency check.
test-run:
	$(GO) build ./...
	$(GO) vet $(TAGS) ./...
	$(GO) test $(TAGS) -short -count=1 -timeout 15m ./...
	@echo '# the portable loops behind the AVX2 kernels, on the same tests:'
	SMTRAIN_NOSIMD=1 $(GO) test $(TAGS) -short -count=1 -timeout 5m ./model/... ./decode/ ./objective/
ifeq ($(HAVE_RACE),yes)
	@echo '# the model'"'"'s parallel kernels (internal/parallel'"'"'s worker pool) under the race detector:'
	$(GO) test $(TAGS) -race -short -count=1 -timeout 10m ./model/ ./internal/parallel/
endif

test-long:
	$(GO) test $(TAGS) -count=1 -timeout 60m ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(TAGS) ./...
	@# generated files are what their generators write (go generate)
	$(GO) test -count=1 -run TestGeneratedCurrent ./model/internal/vec/

bench: build
	./scripts/bench.sh

demo: deps
	$(MAKE) --no-print-directory build
	./scripts/demo.sh

# dojo trains a policy that earns reward in the built-in environments on
# held-out data draws (collect, fit, rollouts; results/dojo/).
dojo: deps
	$(MAKE) --no-print-directory build
	./scripts/dojo.sh

clean:
	rm -rf bin
