# Gleitzeit for Go. `make run` starts the example, `make test` proves it.
GO        ?= go
FUZZTIME  ?= 60s
BENCHTIME ?= 1s
RUNS      ?= 5
STATICCHECK_VERSION ?= v0.8.2

.PHONY: run test stress lint fuzz bench

# The real MCP server the tests run (providers/mcp, the service's pools),
# pinned by internal/mcptest's package-lock.json, installed by npm ci
# whenever the lock file is newer than what is installed.
MCPTEST := internal/mcptest
$(MCPTEST)/node_modules/.package-lock.json: $(MCPTEST)/package-lock.json $(MCPTEST)/package.json
	cd $(MCPTEST) && npm ci --no-audit --no-fund

# Built, then run, rather than `go run`: on Ctrl-C, go run exits 1 whatever
# the service's own exit code is.
run:
	$(GO) build -o bin/service ./examples/service
	./bin/service -log-format console

# The registry's core runs ten times: a race that shows once in a few
# runs must fail CI, not a user's shutdown.
test: $(MCPTEST)/node_modules/.package-lock.json
	$(GO) vet ./...
	GOOS=darwin $(GO) vet ./...
	$(GO) test -race -count=1 -timeout 10m ./...
	$(GO) test -race -count=10 -timeout 10m ./lifecycle
	cd benchmarks && $(GO) vet ./... && $(GO) test -race -count=1 -timeout 5m ./...

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
