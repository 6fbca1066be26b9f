#!/usr/bin/env bash
# make test: every step says what it does as it begins and how it ended,
# every step runs even after an earlier one failed, and the end names the
# steps, packages and tests that failed. Each go test step is bounded by
# its -timeout, so the whole run is bounded too.
#
# gotestsum (pinned in internal/tools) runs go test: it prints each test as
# it ends, so that a slow run is told from a hung one, and summarises the
# failures. It never runs a failed test again: a test that fails once in a
# few runs must fail here.
set -uo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
runs=$(mktemp -d)
trap 'rm -rf "$runs"' EXIT
failed=() # the steps that failed
reports=() # the gotestsum JSON of each go test step that failed

# step NAME COMMAND...: announces NAME, runs COMMAND, says how it ended.
step() {
	local name=$1 began=$SECONDS
	shift
	printf '\n==> %s\n' "$name"
	if "$@"; then
		printf '<== %s: passed in %ds\n' "$name" $((SECONDS - began))
	else
		printf '<== %s: FAILED after %ds\n' "$name" $((SECONDS - began))
		failed+=("$name")
		return 1
	fi
}

# gotest FORMAT DIR -- GO_TEST_FLAGS...: go test in DIR through gotestsum,
# keeping its JSON for the summary at the end; plain go test if gotestsum
# could not be built.
gotest() {
	local format=$1 dir=$2 gotestsum=$PWD/bin/gotestsum json
	shift 3
	if [[ ! -x $gotestsum ]]; then
		(cd "$dir" && $GO test "$@")
		return
	fi
	json=$(mktemp "$runs/XXXXXX.json")
	if (cd "$dir" && "$gotestsum" --format "$format" --format-icons text \
		--hide-summary skipped --jsonfile "$json" -- "$@"); then
		return 0
	fi
	reports+=("$json")
	return 1
}

mcp_server() {
	local dir=internal/mcptest installed=internal/mcptest/node_modules/.package-lock.json
	if [[ -f $installed && $installed -nt $dir/package-lock.json && $installed -nt $dir/package.json ]]; then
		echo "installed already, at the version its package-lock.json pins"
		return 0
	fi
	(cd "$dir" && npm ci --no-audit --no-fund)
}

# browser finds the Chromium that examples/service's browser test drives,
# or installs Debian's when it can (as root, with apt-get), as on CI.
browser() {
	local b
	for b in chromium chromium-browser google-chrome google-chrome-stable; do
		if command -v "$b" >/dev/null; then
			echo "found: $(command -v "$b")"
			return 0
		fi
	done
	if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
		echo "installing Debian's chromium"
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null && return 0
	fi
	echo "no Chromium: the browser test of examples/service fails without one; install Debian's chromium (apt-get install chromium)"
	return 1
}

build_gotestsum() {
	rm -f bin/gotestsum # never a stale one
	if (cd internal/tools && $GO build -o ../../bin/gotestsum gotest.tools/gotestsum); then
		return 0
	fi
	echo "the tests run with plain go test instead: no line per test, and no list of the failed tests at the end"
	return 1
}

benchmarks() {
	(cd benchmarks && $GO vet ./...) && gotest testname benchmarks -- -race -count=1 -timeout 5m ./...
}

begun=$SECONDS
step "the MCP reference server the tests run (npm ci in internal/mcptest)" mcp_server
step "Chromium, which a test drives (installed when missing, if run as root)" browser
step "gotestsum, which runs the tests (built from internal/tools)" build_gotestsum
step "go vet" $GO vet ./...
step "go vet for darwin (the process provider's other build)" env GOOS=darwin $GO vet ./...
step "every package, with the race detector (go test -race ./...)" \
	gotest testname . -- -race -count=1 -timeout 10m ./...
# A race that shows once in a few runs must fail here, not in a user's
# shutdown.
step "the registry's core ten times over (go test -race -count=10 ./lifecycle: a dot a test)" \
	gotest dots . -- -race -count=10 -timeout 10m ./lifecycle
step "the benchmarks module: vet, then its tests (go test -race, in benchmarks/)" benchmarks

printf '\n==> make test: %ds\n' $((SECONDS - begun))
if ((${#failed[@]} == 0)); then
	echo "every step passed"
	exit 0
fi
echo "FAILED:"
printf '  - %s\n' "${failed[@]}"
for json in ${reports[@]+"${reports[@]}"}; do
	echo
	bin/gotestsum --raw-command --format pkgname --format-icons text --format-hide-empty-pkg \
		--hide-summary skipped,output -- cat "$json"
done
exit 1
