package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

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

// signalOn is a log destination that sends this process SIGTERM when a
// line containing text is written, before the write returns: the signal
// arrives the moment the program has said the line, however fast.
type signalOn struct {
	text string
	sent atomic.Bool
}

func (s *signalOn) Write(b []byte) (int, error) {
	if strings.Contains(string(b), s.text) && s.sent.CompareAndSwap(false, true) {
		if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
			return 0, err
		}
	}
	return len(b), nil
}

func (*signalOn) Sync() error { return nil }

// The program catches SIGTERM from the moment it says it runs: a SIGTERM
// sent on reading that line stops it with its cleanup. Were it not caught
// yet, the signal would end this test binary, and the test with it.
func TestSIGTERMRightAfterRunningIsCaught(t *testing.T) {
	dest := &signalOn{text: "running;"}
	log := zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig()), dest, zapcore.InfoLevel))
	var report testkit.LockedBuffer
	code := testkit.Go(func() int { return run(log, &report) })
	assert.Equal(t, 0, testkit.Receive(t, code, "run, after SIGTERM"))
	assert.True(t, dest.sent.Load(), "the program never said it runs")
	assert.Contains(t, report.String(), "cleanup report: 3 providers")
}
