package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gleitzeit/gleitzeit/internal/testkit"
)

// The example as a user runs it: start it, send SIGTERM, read the report.
func TestSIGTERMPrintsTheCleanupReport(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "basic")
	build := exec.Command("go", "build", "-o", bin, ".")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)

	var stdout, stderr testkit.LockedBuffer
	cmd := exec.Command(bin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	require.Eventually(t, func() bool {
		return strings.Contains(stderr.String(), "running;")
	}, 30*time.Second, 10*time.Millisecond, "the example did not start")
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-done:
		require.NoError(t, err, "exit status; stderr: %s", stderr.String())
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("the example did not stop after SIGTERM")
	}
	report := stdout.String()
	assert.Contains(t, report, "cleanup report: 3 providers")
	for _, line := range []string{"cache    ok        Cleanup", "store    ok        Cleanup", "ticker   ok        Close"} {
		assert.Contains(t, report, line)
	}
}
