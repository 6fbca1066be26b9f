package lifecycle_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// With NoTimeout, a provider's Initialize and cleanup run for as long as
// the caller's context allows, here three times the registry's default.
func TestNoTimeoutLeavesTheCallersContextAsTheOnlyBound(t *testing.T) {
	r := lifecycle.NewRegistry(lifecycle.WithDefaultTimeout(50 * time.Millisecond))
	slow := newFake("slow", &journal{})
	slow.initialize, slow.cleanup = sleeping(150*time.Millisecond), sleeping(150*time.Millisecond)
	mustRegister(t, r, slow, lifecycle.Timeout(lifecycle.NoTimeout))
	require.Equal(t, lifecycle.NoTimeout, r.Providers()[0].Timeout)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, r.Start(ctx), "a 150ms Initialize with no timeout of its own")
	require.NoError(t, r.Stop(ctx), "a 150ms cleanup with no timeout of its own")
	assert.Equal(t, lifecycle.ResultOK, r.Report().Providers["slow"].Result)
}

// The caller's deadline still ends them, and the error names the provider.
func TestNoTimeoutEndsAtTheCallersDeadline(t *testing.T) {
	r := lifecycle.NewRegistry(lifecycle.WithDefaultTimeout(lifecycle.NoTimeout))
	release := make(chan struct{})
	defer close(release)
	hung := newFake("hung", &journal{})
	hung.cleanup = ignoring(release)
	mustRegister(t, r, hung)
	require.NoError(t, r.Start(context.Background()))

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := r.Stop(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"hung"`)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, lifecycle.ResultAbandoned, r.Report().Providers["hung"].Result)
}
