package process_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sourcegraph/jsonrpc2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gleitzeit/gleitzeit/internal/rpctest"
	"github.com/gleitzeit/gleitzeit/internal/testkit"
	"github.com/gleitzeit/gleitzeit/lifecycle"
	"github.com/gleitzeit/gleitzeit/providers/process"
)

// exits returns an OnExit that sends what it is told to the channel.
func exits() (chan process.Exit, func(process.Exit)) {
	ch := make(chan process.Exit, 2)
	return ch, func(e process.Exit) { ch <- e }
}

// A child that exits by itself is told to OnExit with its status, once.
func TestOnExitTellsAnExitOfItsOwn(t *testing.T) {
	ch, onExit := exits()
	p := start(t, rpctest.Server, false, process.Config{OnExit: onExit})
	pid := pidOf(t, p)
	_ = p.Call(context.Background(), "exit", []int{7}, nil)

	got := testkit.Receive(t, ch, "OnExit")
	assert.Equal(t, pid, got.Pid)
	assert.Equal(t, 7, got.Code)
	assert.Empty(t, got.Signal)
	assert.False(t, got.CleanedUp)
	var exitErr *exec.ExitError
	require.ErrorAs(t, got.Err, &exitErr)
	assert.Equal(t, "exit status 7", got.String())

	require.NoError(t, p.Cleanup(context.Background()))
	assert.Empty(t, ch, "told once")
}

// A child killed by Cleanup is told as a signal, expected.
func TestOnExitTellsAKill(t *testing.T) {
	ch, onExit := exits()
	p := start(t, rpctest.Server, true, process.Config{OnExit: onExit, Grace: 50 * time.Millisecond})
	pid := pidOf(t, p)
	require.ErrorIs(t, p.Cleanup(context.Background()), process.ErrKilled)

	// Cleanup has waited for OnExit.
	require.Len(t, ch, 1)
	got := <-ch
	assert.Equal(t, pid, got.Pid)
	assert.Equal(t, -1, got.Code)
	assert.Equal(t, "killed", got.Signal)
	assert.True(t, got.CleanedUp)
	assert.Equal(t, "signal: killed", got.String())
}

func TestExitString(t *testing.T) {
	tests := []struct {
		name string
		give process.Exit
		want string
	}{
		{"status", process.Exit{Code: 3}, "exit status 3"},
		{"signal", process.Exit{Code: -1, Signal: "terminated"}, "signal: terminated"},
		{"not the exit's error", process.Exit{Code: 0, Err: exec.ErrWaitDelay}, "exit status 0 (" + exec.ErrWaitDelay.Error() + ")"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.give.String())
		})
	}
}

// flushJournal is a child's stderr that records its lines and its flush.
type flushJournal struct {
	j   *testkit.Journal
	buf testkit.LockedBuffer
}

func (f *flushJournal) Write(b []byte) (int, error) { return f.buf.Write(b) }
func (f *flushJournal) Flush()                      { f.j.Add("flushed: " + strings.TrimSpace(f.buf.String())) }

// OnExit comes after the child's stderr has been copied and flushed.
func TestOnExitComesAfterStderrIsFlushed(t *testing.T) {
	var journal testkit.Journal
	stderr := &flushJournal{j: &journal}
	p := start(t, rpctest.Server, false, process.Config{Stderr: stderr,
		OnExit: func(e process.Exit) { journal.Add("exit: " + e.String()) }})
	require.NoError(t, p.Call(context.Background(), "log", []string{"last words"}, nil))
	_ = p.Call(context.Background(), "exit", []int{0}, nil)
	require.NoError(t, p.Cleanup(context.Background()))
	assert.Equal(t, []string{"flushed: last words", "exit: exit status 0"}, journal.All())
}

// With CloseWait, Cleanup closes the child's stdin and the child, which
// exits at its end, does so by itself: no signal.
func TestCloseWaitLetsTheChildExitByItself(t *testing.T) {
	ch, onExit := exits()
	p := start(t, rpctest.Server, false, process.Config{OnExit: onExit, CloseWait: testkit.Wait})
	pid := pidOf(t, p)
	require.NoError(t, p.Cleanup(context.Background()))
	got := testkit.Receive(t, ch, "OnExit")
	assert.Equal(t, 0, got.Code)
	assert.Empty(t, got.Signal)
	assert.True(t, got.CleanedUp)
	assert.True(t, gone(pid))
}

// While Cleanup waits for the child to exit, its output is still read:
// a call in flight gets its answer.
func TestCloseWaitDrainsCallsInFlight(t *testing.T) {
	sleeping, handler := onSleeping()
	ch, onExit := exits()
	p := start(t, rpctest.Drainer, false, process.Config{Handler: handler, OnExit: onExit, CloseWait: testkit.Wait})
	result := testkit.Go(func() error {
		var got string
		if err := p.Call(context.Background(), "sleep", []int{200, 1}, &got); err != nil {
			return err
		}
		assert.Equal(t, "slept", got)
		return nil
	})
	testkit.Receive(t, sleeping, "the child's sleeping notification")
	require.NoError(t, p.Cleanup(context.Background()))
	require.NoError(t, testkit.Receive(t, result, "the call in flight"))
	assert.Equal(t, 0, testkit.Receive(t, ch, "OnExit").Code)
}

// A child that ignores the end of its stdin gets SIGTERM, then SIGKILL,
// after CloseWait.
func TestCloseWaitEndsInSignals(t *testing.T) {
	ch, onExit := exits()
	p := start(t, rpctest.Server, true, process.Config{OnExit: onExit,
		CloseWait: 50 * time.Millisecond, Grace: 50 * time.Millisecond})
	pid := pidOf(t, p)
	var err error
	testkit.Within(t, "Cleanup", func() { err = p.Cleanup(context.Background()) })
	require.ErrorIs(t, err, process.ErrKilled)
	assert.Equal(t, "killed", testkit.Receive(t, ch, "OnExit").Signal)
	assert.True(t, gone(pid))
}

// CloseWait is cut to fit the cleanup's deadline, as the grace is: an hour
// of each does not hold a cleanup that has a fraction of a second. The
// context reports that deadline but never ends, so that only the cuts can
// end the waits, and the kill and the reaping after them take what the
// machine needs.
func TestCloseWaitFitsTheDeadline(t *testing.T) {
	p := start(t, rpctest.Server, true, process.Config{CloseWait: time.Hour, Grace: time.Hour})
	pid := pidOf(t, p)
	var err error
	testkit.Within(t, "Cleanup", func() { err = p.Cleanup(testkit.DeadlineOnly(300 * time.Millisecond)) })
	require.ErrorIs(t, err, process.ErrKilled)
	assert.True(t, gone(pid))
}

// startShell builds and initializes a child that runs script under sh.
func startShell(t *testing.T, script string, cfg process.Config) *process.Process {
	t.Helper()
	cfg.Command = []string{"sh", "-c", script}
	return startCommand(t, cfg)
}

// The answers a child wrote before it exited reach their calls, however
// late its output is read: the connection is closed, and OnExit told,
// only at the output's end. The child writes a notification, its answer
// to the first call (id 0), and exits; the notification's handler holds
// the reading until OnExit has come (a reaper that closed the connection
// at the exit would tell it at once, and the call would fail), or until
// the exit has been seen for 200 ms. That fallback is the one real-time
// wait: it cannot make the test fail, only let such a reaper go unseen
// if a loaded machine did not run it for 200 ms.
func TestAnswersWrittenBeforeTheExitReachTheirCalls(t *testing.T) {
	exited := make(chan process.Exit, 1)
	notified := make(chan struct{}, 1)
	gate, open := testkit.Gate(t)
	handler := jsonrpc2.HandlerWithError(func(_ context.Context, _ *jsonrpc2.Conn, req *jsonrpc2.Request) (any, error) {
		if req.Method == "last words" {
			notified <- struct{}{}
			<-gate
		}
		return nil, nil
	})
	p := startShell(t, `read call
		printf '%s\n' '{"jsonrpc":"2.0","method":"last words"}' '{"jsonrpc":"2.0","id":0,"result":"answered"}'`,
		process.Config{Handler: handler, OnExit: func(e process.Exit) { exited <- e; open() }})
	type answer struct {
		got string
		err error
	}
	answered := testkit.Go(func() answer {
		var got string
		err := p.Call(context.Background(), "anything", nil, &got)
		return answer{got, err}
	})
	testkit.Receive(t, notified, "the child's notification")
	require.Eventually(t, func() bool { return !p.Running() }, testkit.Wait, time.Millisecond, "the child's exit")
	select {
	case <-gate:
	case <-time.After(200 * time.Millisecond):
		open()
	}
	a := testkit.Receive(t, answered, "the call")
	require.NoError(t, a.err)
	assert.Equal(t, "answered", a.got)
	assert.Equal(t, "exit status 0", testkit.Receive(t, exited, "OnExit").String())
}

// A child that exited is seen as exited at once, though a grandchild
// holds its output open: it is not running, unhealthy, and takes no new
// call. Only the connection, for the answers still to be read, and so
// OnExit, wait for the output's end or the grace period (an hour here).
func TestAnExitIsSeenThoughAGrandchildHoldsTheOutput(t *testing.T) {
	ch, onExit := exits()
	p := startShell(t, `sleep 3600 & exit 3`, process.Config{Grace: time.Hour, OnExit: onExit})
	require.Eventually(t, func() bool { return !p.Running() }, testkit.Wait, time.Millisecond, "the child's exit")
	h := p.HealthCheck(context.Background())
	assert.Equal(t, lifecycle.StatusUnhealthy, h.Status)
	assert.Equal(t, "exited (exit status 3)", h.Message)
	err := p.Call(context.Background(), "ping", nil, nil)
	require.ErrorIs(t, err, process.ErrClosed)
	assert.ErrorContains(t, err, "exit status 3")
	assert.Empty(t, ch, "OnExit before the output's end or the grace period")

	// Cleanup ends the grandchild, and with it the output.
	require.NoError(t, p.Cleanup(context.Background()))
	assert.Equal(t, 3, testkit.Receive(t, ch, "OnExit").Code)
}

// Exit.Calls counts the calls that waited for an answer when the child's
// output ended, though the connection fails them, and their callers
// return, before the child is reaped: a pool tells a child killed by a
// task from one that died on its own by it. A health call does not count.
func TestExitCountsTheCallsItCutShort(t *testing.T) {
	for _, tt := range []struct {
		name   string
		health bool
		want   int64
	}{{"a task's call", false, 1}, {"a health call", true, 0}} {
		t.Run(tt.name, func(t *testing.T) {
			exited, onExit := exits()
			p := startShell(t, `read call; exit 3`, process.Config{OnExit: onExit})
			ctx := context.Background()
			if tt.health {
				var cancel context.CancelFunc
				ctx, cancel = process.HealthCallContext(ctx)
				defer cancel()
			}
			err := p.Call(ctx, "die", nil, nil)
			require.Error(t, err, "the child exits instead of answering")
			x := testkit.Receive(t, exited, "OnExit")
			assert.Equal(t, "exit status 3", x.String())
			assert.Equal(t, tt.want, x.Calls)
		})
	}
	exited, onExit := exits()
	startShell(t, `exit 3`, process.Config{OnExit: onExit})
	assert.Zero(t, testkit.Receive(t, exited, "OnExit").Calls, "a child that died with nothing asked of it")
}
