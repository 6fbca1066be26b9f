package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gleitzeit/gleitzeit/internal/testkit"
)

// hungStart configures a template whose child writes its pid to a file
// and never answers the handshake (it is sleep(1)): its Initialize hangs,
// as a child's that takes long to become ready does, until a signal cuts
// the start short. If stubborn, the child ignores SIGTERM from the moment
// it writes its pid, so that its cleanup takes SIGKILL. shutdown is the
// configuration's shutdown:, process the template's process: settings
// beyond the command.
func hungStart(t *testing.T, addr, pidFile string, stubborn bool, shutdown, process string) string {
	t.Helper()
	script := `echo $$ >> "$0"; exec sleep 600`
	if stubborn {
		script = `trap "" TERM; ` + script // sleep inherits the ignored signal
	}
	return config(t, addr, t.TempDir(), "", fmt.Sprintf(`
provider_timeout: 120s
shutdown: %s
templates:
  slow:
    kind: process
    protocol: work/v1
    critical: true
    process: {command: ["/bin/sh", "-c", %q, %q], ready_method: ping, %s}
providers:
  - {id: slow-1, template: slow}
  - {id: slow-2, template: slow}
`, shutdown, script, pidFile, process))
}

// startedChild waits until the service's first child has written its pid:
// the registry's start is initializing it.
func startedChild(t *testing.T, svc *running, pidFile string) int {
	t.Helper()
	var pid int
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(pidFile)
		if err != nil || !strings.HasSuffix(string(b), "\n") {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	}, testkit.Wait, 10*time.Millisecond, "no child started:\n%s", svc.stderr)
	return pid
}

// requireGone requires that the child is gone.
func requireGone(t *testing.T, pid int) {
	t.Helper()
	require.Eventually(t, func() bool { return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) },
		testkit.Wait, 10*time.Millisecond, "the child (pid %d) is gone", pid)
}

// SIGTERM during the start cancels it. The child being
// initialized, whose Initialize hangs, is cleaned up, the one after it is
// never started, and the service exits 0 within its 5 s shutdown timeout
// (the 30 s that exitCode waits are less than the 120 s provider timeout
// that would otherwise end the start), with the cleanup report.
func TestSIGTERMDuringStartCancelsIt(t *testing.T) {
	addr, pidFile := freeAddr(t), filepath.Join(t.TempDir(), "pids")
	svc := run(t, hungStart(t, addr, pidFile, false, `{timeout: 5s, drain_delay: 0s, cleanup_reserve: 4s}`, `grace: 2s`))
	pid := startedChild(t, svc, pidFile)
	require.NoError(t, svc.cmd.Process.Signal(syscall.SIGTERM))
	assert.Equal(t, 0, svc.exitCode(), "exit code; log:\n%s", svc.stderr)
	requireGone(t, pid)

	log := svc.stderr.String()
	assert.Equal(t, 1, strings.Count(log, "start cancelled by signal"), log)
	assert.Contains(t, log, `"slow-1":{"method":"Cleanup","result":"ok"`, "the report: the child initialized is cleaned up")
	for _, id := range []string{"slow-2", "store", "audit"} {
		assert.Contains(t, log, `"`+id+`":{"method":"","result":"skipped","duration_ms":0,"reason":"never initialized"}`,
			"the report names %s, never initialized", id)
	}
	assert.Contains(t, log, "start cancelled: service stopped")
	assert.NotContains(t, log, "service started")
	assert.NotContains(t, log, `"level":"error"`, "no error is logged")
	assert.NotContains(t, log, "no cleanup method", "a provider never initialized is not said to lack one")
}

// A cleanup that fails during that rollback (a child that ignores SIGTERM
// takes SIGKILL) makes the exit code 1, and the report says why.
func TestSIGTERMDuringStartWithAFailedCleanupExits1(t *testing.T) {
	addr, pidFile := freeAddr(t), filepath.Join(t.TempDir(), "pids")
	svc := run(t, hungStart(t, addr, pidFile, true, `{timeout: 10s, drain_delay: 0s, cleanup_reserve: 9s}`, `grace: 200ms`))
	pid := startedChild(t, svc, pidFile)
	require.NoError(t, svc.cmd.Process.Signal(syscall.SIGTERM))
	assert.Equal(t, 1, svc.exitCode(), "exit code; log:\n%s", svc.stderr)
	requireGone(t, pid)

	log := svc.stderr.String()
	assert.Contains(t, log, `"slow-1":{"method":"Cleanup","result":"error"`, "the report names the failed cleanup")
	assert.Contains(t, log, "start cancelled: providers failed to clean up")
}

// A second signal during that rollback forces the exit: exit code 1, and
// the log names the provider whose cleanup had not ended. The kernel kills
// the child that the forced exit leaves (Pdeathsig).
func TestSecondSignalDuringACancelledStartForcesExit(t *testing.T) {
	addr, pidFile := freeAddr(t), filepath.Join(t.TempDir(), "pids")
	svc := run(t, hungStart(t, addr, pidFile, true, `{timeout: 50s, drain_delay: 0s, cleanup_reserve: 45s}`, `grace: 40s`))
	pid := startedChild(t, svc, pidFile)
	require.NoError(t, svc.cmd.Process.Signal(syscall.SIGTERM))
	require.Eventually(t, func() bool { return strings.Contains(svc.stderr.String(), "cleaning up providers") },
		testkit.Wait, 10*time.Millisecond, "log:\n%s", svc.stderr)
	require.NoError(t, svc.cmd.Process.Signal(syscall.SIGINT))
	assert.Equal(t, 1, svc.exitCode(), "exit code; log:\n%s", svc.stderr)
	requireGone(t, pid)

	log := svc.stderr.String()
	assert.Contains(t, log, "second signal: exiting now")
	assert.Contains(t, log, "slow-1 (cleaning)")
}
