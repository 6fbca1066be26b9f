# Gleitzeit for Go. `make run` starts the example, `make test` proves it.
GO        ?= go
FUZZTIME  ?= 60s
BENCHTIME ?= 1s
RUNS      ?= 5
STATICCHECK_VERSION ?= v0.8.2

.PHONY: run test stress lint fuzz bench

# Built, then run, rather than `go run`: on Ctrl-C, go run exits 1 whatever
# the service's own exit code is.
run:
	$(GO) build -o bin/service ./examples/service
	./bin/service -log-format console

# go vet, every package under the race detector, the registry's core ten
# times over, and the benchmarks module: each step says what it does as it
# begins, all of them run, and the end names what failed (scripts/test.sh).
# It installs the MCP reference server the tests run (npm ci in
# internal/mcptest) when its package-lock.json is newer than what is there,
# and Debian's Chromium, which a browser test drives, when it is missing and
# make test runs as root.
test:
	@GO=$(GO) bash scripts/test.sh

# Fifty runs of the core under the race detector: what a change to
# concurrent code must pass before it lands (STRESS=200 for more).
STRESS ?= 50
stress:
	$(GO) test -race -count=$(STRESS) -timeout 60m ./lifecycle

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...
	cd benchmarks && $(GO) vet ./... && $(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

# The seed corpus of every fuzz test runs in `make test`; this explores
# beyond it for FUZZTIME.
fuzz:
	$(GO) test ./lifecycle -run '^$$' -fuzz '^FuzzRegistry$$' -fuzztime $(FUZZTIME)

# The registry's and the service's testing.B benchmarks, what fxmodule costs
# an fx app, then the table of benchmarks/ (the registry beside fx and
# samber/do). See BENCHMARKS.md.
bench:
	$(GO) test ./lifecycle ./app -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME)
	cd benchmarks && $(GO) test ./fxapp -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -count 3
	cd benchmarks && $(GO) run . -runs $(RUNS)
