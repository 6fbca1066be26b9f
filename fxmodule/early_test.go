package fxmodule

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// The hooks' margin before fx's deadline is a tenth of what is left,
// between 20ms and 250ms, and never more than half of it: a short timeout
// still leaves the registry time to work.
func TestEarlyMargin(t *testing.T) {
	for _, tt := range []struct {
		left, margin time.Duration
	}{
		{time.Minute, 250 * time.Millisecond},
		{time.Second, 100 * time.Millisecond},
		{100 * time.Millisecond, 20 * time.Millisecond},
		{30 * time.Millisecond, 15 * time.Millisecond},
		{10 * time.Millisecond, 5 * time.Millisecond},
	} {
		parent, cancel := context.WithTimeout(context.Background(), tt.left)
		pd, _ := parent.Deadline()
		ctx, cancelEarly := early(parent)
		d, ok := ctx.Deadline()
		assert.True(t, ok)
		assert.InDelta(t, float64(tt.margin), float64(pd.Sub(d)), float64(time.Millisecond), "left %v", tt.left)
		cancelEarly()
		cancel()
	}
	ctx, cancel := early(context.Background())
	defer cancel()
	_, ok := ctx.Deadline()
	assert.False(t, ok, "no deadline, no margin")
}
