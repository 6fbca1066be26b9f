package process_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sourcegraph/jsonrpc2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/gleitzeit/gleitzeit/internal/rpctest"
	"github.com/gleitzeit/gleitzeit/internal/testkit"
	"github.com/gleitzeit/gleitzeit/lifecycle"
	"github.com/gleitzeit/gleitzeit/providers/process"
)

func TestMain(m *testing.M) {
	rpctest.Serve()
	// Orphaned grandchildren come to this process, which Cleanup then reaps,
	// instead of to a PID 1 that a test machine may not have reaping.
	if err := process.BecomeSubreaper(); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	goleak.VerifyTestMain(m)
}

// start builds and initializes a child: this test binary in mode.
func start(t *testing.T, mode string, stubborn bool, cfg process.Config) *process.Process {
	t.Helper()
	cfg.Command, cfg.Env = rpctest.Command(mode, stubborn)
	if cfg.Stderr == nil {
		cfg.Stderr = &bytes.Buffer{}
	}
	return startCommand(t, cfg)
}

// startCommand builds and initializes a child as cfg says, and cleans it
// up at the test's end.
func startCommand(t *testing.T, cfg process.Config) *process.Process {
	t.Helper()
	p, err := process.New(cfg)
	require.NoError(t, err)
	require.NoError(t, p.Initialize(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testkit.Wait)
		defer cancel()
		_ = p.Cleanup(ctx)
	})
	return p
}

func pidOf(t *testing.T, p *process.Process) int {
	t.Helper()
	var pid int
	require.NoError(t, p.Call(context.Background(), "pid", nil, &pid))
	return pid
}

// onSleeping returns a Handler that tells the channel when the child sends
// "sleeping": a call of "sleep" with [milliseconds, 1] has reached it.
func onSleeping() (<-chan struct{}, jsonrpc2.Handler) {
	sleeping := make(chan struct{}, 1)
	return sleeping, jsonrpc2.HandlerWithError(func(_ context.Context, _ *jsonrpc2.Conn, req *jsonrpc2.Request) (any, error) {
		if req.Method == "sleeping" {
			sleeping <- struct{}{}
		}
		return nil, nil
	})
}

// gone reports whether no process with that pid exists, zombies included.
func gone(pid int) bool { return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) }

func TestCallsReachTheChild(t *testing.T) {
	p := start(t, rpctest.Server, false, process.Config{})
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			var got map[string]int
			require.NoError(t, p.Call(context.Background(), "echo", map[string]int{"n": i}, &got))
			assert.Equal(t, i, got["n"])
		})
	}
	testkit.Within(t, "the calls", wg.Wait)

	err := p.Call(context.Background(), "fail", nil, nil)
	var rpcErr *jsonrpc2.Error
	require.ErrorAs(t, err, &rpcErr)
	assert.EqualValues(t, 42, rpcErr.Code)
}

// A child that exits when its stdin closes, or on SIGTERM, is reaped, and
// leaves no descriptor open.
func TestCleanupStopsAndReapsTheChild(t *testing.T) {
	before := testkit.OpenFDs(t)
	p := start(t, rpctest.Server, false, process.Config{})
	pid := pidOf(t, p)
	require.NoError(t, p.Cleanup(context.Background()))
	assert.True(t, gone(pid), "the child is gone, not a zombie")
	assert.Equal(t, before, testkit.OpenFDs(t))
	require.ErrorIs(t, p.Call(context.Background(), "ping", nil, nil), process.ErrClosed)
	require.NoError(t, p.Cleanup(context.Background()), "Cleanup is idempotent")
}

// A child that ignores SIGTERM and its stdin's end is killed after its
// grace period, and the cleanup says so.
func TestChildIgnoringSIGTERMIsKilled(t *testing.T) {
	p := start(t, rpctest.Server, true, process.Config{Grace: 100 * time.Millisecond})
	pid := pidOf(t, p)
	var err error
	testkit.Within(t, "Cleanup", func() { err = p.Cleanup(context.Background()) })
	require.ErrorIs(t, err, process.ErrKilled)
	assert.True(t, gone(pid))
}

// A grandchild that ignores SIGTERM is killed with the group and reaped: no
// orphan, no zombie.
func TestGrandchildrenDoNotSurvive(t *testing.T) {
	for _, stubborn := range []bool{false, true} {
		t.Run(fmt.Sprintf("stubborn child %v", stubborn), func(t *testing.T) {
			p := start(t, rpctest.Server, stubborn, process.Config{Grace: 100 * time.Millisecond})
			pid := pidOf(t, p)
			var gpid int
			require.NoError(t, p.Call(context.Background(), "spawn", nil, &gpid))
			require.False(t, gone(gpid))

			testkit.Within(t, "Cleanup", func() { _ = p.Cleanup(context.Background()) })
			assert.True(t, gone(pid), "child")
			assert.True(t, gone(gpid), "grandchild")
			assert.True(t, errors.Is(syscall.Kill(-pid, 0), syscall.ESRCH), "the process group is empty")
		})
	}
}

// A call in flight when Cleanup begins fails at once; it does not hang.
func TestCallInFlightFailsAtCleanup(t *testing.T) {
	p := start(t, rpctest.Server, false, process.Config{})
	result := testkit.Go(func() error { return p.Call(context.Background(), "sleep", []int{60_000}, nil) })
	require.Eventually(t, func() bool {
		return p.HealthCheck(context.Background()).Resources["calls_in_flight"] == int64(1)
	}, testkit.Wait, time.Millisecond)
	require.NoError(t, p.Cleanup(context.Background()))
	err := testkit.Receive(t, result, "the call in flight")
	require.ErrorIs(t, err, process.ErrClosed)
	assert.Contains(t, err.Error(), `call "sleep"`)
}

// A child that exits on its own fails its calls with the reason; a clean
// exit is named by its status too, not as "exited (exited)".
func TestChildExitIsReported(t *testing.T) {
	for _, code := range []int{7, 0} {
		want := fmt.Sprintf("exit status %d", code)
		t.Run(want, func(t *testing.T) {
			p := start(t, rpctest.Server, false, process.Config{})
			assert.False(t, p.Reaped(), "running")
			pending := testkit.Go(func() error { return p.Call(context.Background(), "sleep", []int{60_000}, nil) })
			_ = p.Call(context.Background(), "exit", []int{code}, nil)
			err := testkit.Receive(t, pending, "the call in flight")
			require.ErrorIs(t, err, process.ErrClosed)
			require.Eventually(t, func() bool {
				return p.HealthCheck(context.Background()).Status == lifecycle.StatusUnhealthy
			}, testkit.Wait, time.Millisecond)
			h := p.HealthCheck(context.Background())
			assert.Equal(t, "exited ("+want+")", h.Message)
			assert.Equal(t, false, h.Resources["running"])
			require.ErrorContains(t, p.Call(context.Background(), "ping", nil, nil), want)
			assert.False(t, p.Running())
			assert.True(t, p.Reaped())
		})
	}
}

// The call that lost its child names the exit: the end of its output
// comes a moment before the child is reaped, and the call waits for that.
func TestTheCallThatLostItsChildNamesTheExit(t *testing.T) {
	for range 20 {
		p := start(t, rpctest.Server, false, process.Config{})
		assert.True(t, p.Running())
		pending := testkit.Go(func() error { return p.Call(context.Background(), "sleep", []int{60_000}, nil) })
		_ = p.Call(context.Background(), "exit", []int{9}, nil)
		err := testkit.Receive(t, pending, "the call in flight")
		require.ErrorIs(t, err, process.ErrClosed)
		assert.Contains(t, err.Error(), "exit status 9")
		assert.False(t, p.Running(), "a call that failed on the exit sees it")
	}
}

func TestRunning(t *testing.T) {
	p, err := process.New(process.Config{Command: []string{"sh", "-c", "exec sleep 60"}})
	require.NoError(t, err)
	assert.False(t, p.Running(), "not started")
	require.NoError(t, p.Initialize(context.Background()))
	assert.True(t, p.Running())
	require.NoError(t, p.Cleanup(context.Background()))
	assert.False(t, p.Running(), "cleaned up")

	g := start(t, rpctest.Garbage, false, process.Config{Grace: 50 * time.Millisecond})
	require.Eventually(t, func() bool { return !g.Running() }, testkit.Wait, time.Millisecond, "its output broke: no call can reach it")
}

// A child whose stdout is not JSON-RPC (a banner, a print left in): the
// error names what it printed, is told to OnOutputError once, and stays in
// the health message.
func TestGarbageOnStdoutIsNamed(t *testing.T) {
	reported := make(chan error, 2)
	p := start(t, rpctest.Garbage, false, process.Config{Grace: 50 * time.Millisecond,
		OnOutputError: func(err error) { reported <- err }})
	err := p.Call(context.Background(), "ping", nil, nil)
	require.ErrorIs(t, err, process.ErrClosed)
	assert.Contains(t, err.Error(), "reading its output: invalid character")
	assert.Contains(t, err.Error(), `"this is not JSON\n"`)
	got := testkit.Receive(t, reported, "the output error")
	assert.Contains(t, got.Error(), `process "process": its output is not JSON-RPC`)
	assert.Contains(t, got.Error(), "this is not JSON")
	assert.Len(t, reported, 0, "told once")
	assert.Contains(t, p.HealthCheck(context.Background()).Message, "this is not JSON")
}

func TestHealth(t *testing.T) {
	p := start(t, rpctest.Server, false, process.Config{Protocol: "python/v1", HealthMethod: "ping"})
	h := p.HealthCheck(context.Background())
	assert.Equal(t, lifecycle.StatusHealthy, h.Status)
	assert.Equal(t, true, h.Resources["running"])
	assert.Equal(t, "python/v1", h.Resources["protocol"])
	assert.Positive(t, h.Resources["pid"])

	bad := start(t, rpctest.Server, false, process.Config{HealthMethod: "no-such-method"})
	h = bad.HealthCheck(context.Background())
	assert.Equal(t, lifecycle.StatusUnhealthy, h.Status)
	assert.Contains(t, h.Message, "no-such-method")
}

func TestHandshake(t *testing.T) {
	ok := start(t, rpctest.Server, false, process.Config{ReadyMethod: "ping"})
	require.NoError(t, ok.Call(context.Background(), "ping", nil, nil))

	before := testkit.OpenFDs(t)
	argv, env := rpctest.Command(rpctest.Server, false)
	p, err := process.New(process.Config{Command: argv, Env: env, ReadyMethod: "no-such-method", Stderr: &bytes.Buffer{}})
	require.NoError(t, err)
	err = p.Initialize(context.Background())
	require.ErrorContains(t, err, "handshake")
	require.NoError(t, p.Cleanup(context.Background()), "a failed Initialize leaves a child to clean up")
	assert.Equal(t, before, testkit.OpenFDs(t))
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		give process.Config
		want string
	}{
		{"no command", process.Config{}, "Command is empty"},
		{"unknown program", process.Config{Command: []string{"gleitzeit-no-such-program"}}, `"gleitzeit-no-such-program"`},
		{"bad dir", process.Config{Command: []string{"true"}, Dir: "/no/such/dir"}, `"/no/such/dir" is not a directory`},
		{"negative grace", process.Config{Command: []string{"true"}, Grace: -time.Second}, "Grace is negative"},
		{"negative close wait", process.Config{Command: []string{"true"}, CloseWait: -time.Second}, "CloseWait is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := process.New(tt.give)
			require.ErrorContains(t, err, tt.want)
		})
	}
}

// Under the registry, with a stubborn child and a stop deadline shorter
// than the grace period: the grace is cut to fit, and the child is killed.
// The context reports the deadline but never ends, as in
// TestCloseWaitFitsTheDeadline: only the cut can end the grace.
func TestUnderTheRegistry(t *testing.T) {
	argv, env := rpctest.Command(rpctest.Server, true)
	p, err := process.New(process.Config{ID: "python", Command: argv, Env: env, Grace: time.Hour, Stderr: &bytes.Buffer{}})
	require.NoError(t, err)
	r := lifecycle.NewRegistry()
	require.NoError(t, r.Register(p, lifecycle.Timeout(time.Hour)))
	require.NoError(t, r.Start(context.Background()))
	pid := pidOf(t, p)
	testkit.Within(t, "Stop", func() { err = r.Stop(testkit.DeadlineOnly(300 * time.Millisecond)) })
	require.ErrorIs(t, err, process.ErrKilled)
	assert.Equal(t, lifecycle.ResultError, r.Report().Providers["python"].Result)
	assert.True(t, gone(pid))
}

// A child gets an allow-list environment: BaseEnv, the names its Config
// inherits, and its own Env. The service's secrets stay with the service.
func TestChildGetsAnAllowListEnvironment(t *testing.T) {
	t.Setenv("GLEITZEIT_ADMIN_TOKEN", "s3cret-token")
	t.Setenv("GLEITZEIT_STORE_DSN", "postgres://app:hunter2@db/app")
	t.Setenv("ASKED_FOR", "yes")
	t.Setenv("LANG", "C.UTF-8")
	p := start(t, rpctest.Server, false, process.Config{InheritEnv: []string{"ASKED_FOR"}})
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pidOf(t, p)))
	require.NoError(t, err)
	env := map[string]string{}
	for _, kv := range strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00") {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	_, own := rpctest.Command(rpctest.Server, false)
	allowed := append(slices.Clone(process.BaseEnv), "ASKED_FOR")
	for _, kv := range own {
		k, _, _ := strings.Cut(kv, "=")
		allowed = append(allowed, k)
	}
	for k := range env {
		assert.Contains(t, allowed, k, "the child got %s", k)
	}
	assert.Equal(t, "yes", env["ASKED_FOR"])
	assert.Equal(t, "C.UTF-8", env["LANG"])
	assert.Equal(t, os.Getenv("PATH"), env["PATH"])
	assert.NotContains(t, string(raw), "s3cret-token")
	assert.NotContains(t, string(raw), "hunter2")
}

func TestBadEnvIsRefused(t *testing.T) {
	argv, _ := rpctest.Command(rpctest.Server, false)
	for _, tt := range []struct {
		name string
		cfg  process.Config
		want string
	}{
		{"no equals sign", process.Config{Command: argv, Env: []string{"FOO"}}, `Config.Env[0]: want KEY=VALUE, got "FOO"`},
		{"empty key", process.Config{Command: argv, Env: []string{"A=1", "=x"}}, `Config.Env[1]`},
		{"inherit with equals", process.Config{Command: argv, InheritEnv: []string{"A=1"}}, `Config.InheritEnv[0]`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := process.New(tt.cfg)
			require.ErrorContains(t, err, tt.want)
		})
	}
}

// A child that answers in turn, busy with a long call, cannot answer its
// health call in time: busy, not broken. Idle, the same child is healthy.
func TestABusySerialChildIsDegradedNotUnhealthy(t *testing.T) {
	sleeping, handler := onSleeping()
	p := start(t, rpctest.Serial, false, process.Config{HealthMethod: "ping", Handler: handler})
	assert.Equal(t, lifecycle.StatusHealthy, p.HealthCheck(context.Background()).Status)
	long, cancel := context.WithCancel(context.Background())
	defer cancel()
	busy := testkit.Go(func() error { return p.Call(long, "sleep", []int{60_000, 1}, nil) })
	testkit.Receive(t, sleeping, "the child's sleeping notification")
	// The child sleeps a minute before it reads the ping: any deadline
	// shorter than that ends the health call.
	ctx, stop := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer stop()
	h := p.HealthCheck(ctx)
	assert.Equal(t, lifecycle.StatusDegraded, h.Status, h.Message)
	assert.Contains(t, h.Message, "deadline exceeded")
	cancel()
	require.ErrorIs(t, testkit.Receive(t, busy, "the long call"), context.Canceled)
}
