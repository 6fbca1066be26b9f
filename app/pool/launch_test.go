package pool

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// An instance launched after the registry's start that cannot start is
// not the caller's failure: the supervisor retries it until it starts.
func TestALaunchThatFailsIsRetried(t *testing.T) {
	w := newWorld(t, Config{Sizing: sized(2, 2, 1, 0)})
	require.NoError(t, w.reg.Start(context.Background()))
	w.failStarts("t-2", 5) // past the budget of 3: it backs off, and goes on
	require.NoError(t, w.pool.LaunchMin(context.Background()))
	assert.Equal(t, "ready", w.pool.MemberState("t-1"))
	w.pool.Run()
	eventually(t, "t-2 started on its sixth try", func() bool { return w.pool.MemberState("t-2") == "ready" })
	assert.Len(t, w.generations("t-2"), 6)
	assert.Empty(t, w.pool.BackingOff())
	assert.Equal(t, 5, w.pool.Stats().Restarts)
	for _, r := range w.removed() {
		assert.Equal(t, "t-2", r.ID)
		assert.Equal(t, "failed to start", r.Reason)
	}
}

// A launch cut short by its context fails, and leaves nothing to retry.
func TestALaunchCutShortFails(t *testing.T) {
	w := newWorld(t, Config{})
	require.NoError(t, w.reg.Start(context.Background()))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := w.pool.Launch(ctx, []string{"a", "b"})
	require.ErrorIs(t, err, context.Canceled)
	assert.Contains(t, err.Error(), `starting "a"`)
	assert.Empty(t, w.pool.Members())
	assert.Empty(t, w.generations("b"))
}
