package process_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gleitzeit/gleitzeit/internal/testkit"
	"github.com/gleitzeit/gleitzeit/lifecycle"
	"github.com/gleitzeit/gleitzeit/providers/process"
)

// ownStdio starts cat, whose stdio is the test's, and cleans it up.
func ownStdio(t *testing.T, onExit func(process.Exit)) (*process.Process, io.ReadCloser, io.WriteCloser) {
	t.Helper()
	p, err := process.New(process.Config{Command: []string{"cat"}, OwnStdio: true, OnExit: onExit})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testkit.Wait)
		defer cancel()
		_ = p.Cleanup(ctx)
	})
	require.NoError(t, p.Initialize(context.Background()))
	stdout, stdin, err := p.Stdio()
	require.NoError(t, err)
	return p, stdout, stdin
}

// With OwnStdio the caller speaks over the pipes, once handed over, and
// Process speaks nothing: Call and Notify fail, saying why.
func TestOwnStdioIsTheCallers(t *testing.T) {
	p, stdout, stdin := ownStdio(t, nil)
	_, err := io.WriteString(stdin, "hello\n")
	require.NoError(t, err)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "hello\n", line)

	_, _, err = p.Stdio()
	require.ErrorContains(t, err, "already handed over")
	require.ErrorContains(t, p.Call(context.Background(), "x", nil, nil), "its stdio is its caller's")
	require.ErrorContains(t, p.Notify(context.Background(), "x", nil), "its stdio is its caller's")
	assert.True(t, p.Running())
}

// The caller's calls count as calls in flight, health calls apart, and
// those in flight when the output ends are the exit's.
func TestOwnStdioCallsAreCounted(t *testing.T) {
	exits := make(chan process.Exit, 1)
	p, stdout, stdin := ownStdio(t, func(x process.Exit) { exits <- x })
	end := p.Begin(context.Background())
	hctx, cancel := process.HealthCallContext(context.Background())
	defer cancel()
	endHealth := p.Begin(hctx)
	assert.Equal(t, int64(2), p.HealthCheck(context.Background()).Resources["calls_in_flight"])
	endHealth()

	drained := testkit.Go(func() error { _, err := io.Copy(io.Discard, stdout); return err })
	require.NoError(t, stdin.Close()) // cat exits at the end of its input
	x := testkit.Receive(t, exits, "cat's exit")
	assert.Equal(t, 0, x.Code)
	assert.Equal(t, int64(1), x.Calls, "the call in flight when the output ended")
	require.NoError(t, testkit.Receive(t, drained, "the output's end"))
	end()
	assert.False(t, p.Running())
	require.ErrorIs(t, p.Closed(context.Background()), process.ErrClosed)
}

// Output the caller cannot read ends the child's use: it is no longer
// Running, and its health says why. Its end is not broken output.
func TestOwnStdioOutputBroken(t *testing.T) {
	p, _, _ := ownStdio(t, nil)
	p.OutputBroken(io.EOF)
	p.OutputBroken(context.Canceled)
	assert.True(t, p.Running(), "the output's end, or its closing, is not broken output")
	p.OutputBroken(errors.New("invalid character 'B' looking for beginning of value"))
	assert.False(t, p.Running())
	h := p.HealthCheck(context.Background())
	assert.Equal(t, lifecycle.StatusUnhealthy, h.Status)
	assert.Contains(t, h.Message, "invalid character")
}

func TestOwnStdioRefusesWhatIsNotForIt(t *testing.T) {
	for _, cfg := range []process.Config{
		{Command: []string{"cat"}, OwnStdio: true, ReadyMethod: "ready"},
		{Command: []string{"cat"}, OwnStdio: true, HealthMethod: "ping"},
		{Command: []string{"cat"}, OwnStdio: true, OnOutputError: func(error) {}},
	} {
		_, err := process.New(cfg)
		require.ErrorContains(t, err, "OwnStdio")
	}
	p, err := process.New(process.Config{Command: []string{"cat"}})
	require.NoError(t, err)
	_, _, err = p.Stdio()
	require.ErrorContains(t, err, "Stdio is for Config.OwnStdio")
}
