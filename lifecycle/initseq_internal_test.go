package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type plain struct{ id string }

func (p *plain) ID() string                       { return p.id }
func (p *plain) Initialize(context.Context) error { return nil }

// A context that ends between two Initialize calls ends the sequence there,
// blaming the provider that did not begin: the watcher, which sees the end
// with no call running, blames none, and the runner must. (A sequence that
// ended blaming none made Start go round again and StartProvider report
// ErrStopped.) The observer, on the runner's goroutine between the calls,
// waits until every other goroutine is blocked: the watcher has seen the
// end by then.
func TestASequenceWhoseContextEndsBetweenCallsBlamesTheNext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		r := NewRegistry(WithObserver(ObserverFunc(func(e Event) {
			if pi, ok := e.(ProviderInitialized); ok && pi.ID == "a" {
				cancel()
				synctest.Wait()
			}
		})))
		require.NoError(t, r.Register(&plain{"a"}))
		require.NoError(t, r.Register(&plain{"b"}))
		count, failed, err := r.initAll(ctx, []*node{r.nodes["a"], r.nodes["b"]})
		assert.Equal(t, 1, count)
		require.NotNil(t, failed, "the sequence blamed no provider")
		assert.Equal(t, "b", failed.id)
		assert.ErrorIs(t, err, context.Canceled)
		assert.ErrorContains(t, err, "not begun")
	})
}

// Printing an Initialize's context, as a log line inside Initialize may,
// races with nothing, and reads like the standard contexts.
func TestInitContextPrintsWithoutRacing(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()
	deadline := time.Now().Add(time.Hour)
	c := newInitCtx(parent, deadline)
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Done() }()
	s := fmt.Sprint(c)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Done did not return within 10s")
	}
	c.release()
	assert.Contains(t, s, "WithDeadline(")
	assert.Contains(t, s, deadline.String())
	assert.True(t, errors.Is(c.Err(), context.Canceled))
}
