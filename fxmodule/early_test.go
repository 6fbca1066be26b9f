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
		assert.Equal(t, tt.margin, margin(tt.left), "left %v", tt.left)
	}

	parent, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pd, _ := parent.Deadline()
	ctx, cancelEarly := early(parent)
	defer cancelEarly()
	d, ok := ctx.Deadline()
	assert.True(t, ok)
	assert.Equal(t, 250*time.Millisecond, pd.Sub(d), "a minute's margin is the largest, whatever the clock did since")

	ctx, cancelNone := early(context.Background())
	defer cancelNone()
	_, ok = ctx.Deadline()
	assert.False(t, ok, "no deadline, no margin")
}
