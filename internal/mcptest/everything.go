package mcptest

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// EverythingPackage is the npm package of the MCP project's reference
// server, pinned in this folder's package.json.
const EverythingPackage = "@modelcontextprotocol/server-everything"

const fix = "run: cd internal/mcptest && npm ci"

// Everything returns the command line that runs the pinned
// server-everything over stdio: node, the package's entry script, and
// "stdio". It fails the test, naming the reason and the fix, if node is
// missing or the installed package is not the pinned one.
func Everything(t testing.TB) []string {
	t.Helper()
	return append(everything(t), "stdio")
}

// everything is node and the pinned server-everything's entry script.
func everything(t testing.TB) []string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("mcptest: node is needed to run %s: %v; install Node.js 20 or later, then %s", EverythingPackage, err, fix)
	}
	var pinned struct{ Dependencies map[string]string }
	readJSON(t, filepath.Join(dir(), "package.json"), &pinned)
	want := pinned.Dependencies[EverythingPackage]
	if want == "" {
		t.Fatalf("mcptest: package.json does not pin %s", EverythingPackage)
	}

	pkg := filepath.Join(dir(), "node_modules", filepath.FromSlash(EverythingPackage))
	var installed struct {
		Version string
		Bin     map[string]string
	}
	readJSON(t, filepath.Join(pkg, "package.json"), &installed)
	if installed.Version != want {
		t.Fatalf("mcptest: %s %s is installed, package.json pins %s; %s", EverythingPackage, installed.Version, want, fix)
	}
	if len(installed.Bin) != 1 {
		t.Fatalf("mcptest: %s %s: want one entry script in its package.json's bin, got %v", EverythingPackage, want, installed.Bin)
	}
	var script string
	for _, s := range installed.Bin {
		script = filepath.Join(pkg, filepath.FromSlash(s))
	}
	if _, err := os.Stat(script); err != nil {
		t.Fatalf("mcptest: %s's entry script: %v; %s", EverythingPackage, err, fix)
	}
	return []string{node, script}
}

// dir is this package's folder in the source tree, where package.json and
// node_modules are, whichever package's test runs.
func dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

func readJSON(t testing.TB, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("mcptest: %v; %s", err, fix)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("mcptest: %s: %v", path, err)
	}
}
