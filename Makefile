# avstation: the two commands README.md leads with are `make demo` and `make test`.
GO       ?= go
GOBIN    := $(shell $(GO) env GOPATH)/bin
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X github.com/avstation/avstation/version.Version=$(VERSION)

.PHONY: all build deps demo test check unit integration fuzz bench gobench vulncheck clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ ./cmd/avmilter ./cmd/avstation

# Installs what scripts/deps.txt lists, and staticcheck, when missing (as root, on Debian).
deps:
	scripts/install-deps.sh

# The quickstart: a private Postfix, clamd, avstation and avmilter on
# loopback; a clean and an EICAR posting; what happened to each.
demo: deps
	$(GO) run ./test/demo

# Every test, after installing what the tests need. CI runs exactly this.
test: deps check
	$(GO) test -race -count=1 ./...

check:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	$(GOBIN)/staticcheck ./...

unit:
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /test)

integration: deps
	$(GO) test -count=1 -v ./test/...

# Short runs of every fuzz target (their seeds alone run in `make test`).
FUZZTIME ?= 20s
fuzz:
	@set -e; for pkg in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
		for target in $$(grep -h '^func Fuzz' $$pkg/*_test.go | sed 's/^func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do \
			echo "== $$pkg $$target"; \
			$(GO) test $$pkg -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME); \
		done; \
	done

# The comparison with clamav-milter (test/benchcmp; README's Performance):
# 3 interleaved rounds, milter level and through Postfix, the table on
# stdout, every run in BENCH_JSON, CPU profiles of both daemons in
# BENCH_PROFILES. About 10 minutes on 2 cores; wants a quiet machine.
# Smaller: make bench BENCHFLAGS='-rounds 1 -n 50 -postfix-n 200'.
BENCH_JSON     ?= bench.json
BENCH_PROFILES ?= bench-profiles
BENCHFLAGS     ?=
bench: deps
	$(GO) run ./test/benchcmp -json $(BENCH_JSON) -pprof $(BENCH_PROFILES) $(BENCHFLAGS)

# Every `go test -bench` benchmark, with allocations.
gobench: deps
	$(GO) test -run '^$$' -bench . -benchmem ./...

# Needs the vulnerability database on the internet; says so where there is none.
vulncheck:
	@$(GO) run golang.org/x/vuln/cmd/govulncheck@latest ./... || echo "vulncheck: govulncheck or its database could not be reached from this machine"

clean:
	rm -rf bin .demo
