package pool

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestMeterAveragesOverTheWindow(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	const s = time.Second

	t.Run("time before it began is idle", func(t *testing.T) {
		m := newMeter(5*s, t0)
		m.set(t0, 1)
		assert.InDelta(t, 0.1, m.average(at(s/2)), 0.01, "one task for a tenth of the window")
		assert.InDelta(t, 1, m.average(at(5*s)), 0.01, "one task for the whole window")
	})
	t.Run("one task at a time with pauses", func(t *testing.T) {
		m := newMeter(5*s, t0)
		// 100 ms tasks, 300 ms apart: one at a time, a quarter of the time.
		for k := range 50 {
			start := at(time.Duration(k) * 400 * time.Millisecond)
			m.set(start, 1)
			m.set(start.Add(100*time.Millisecond), 0)
		}
		assert.InDelta(t, 0.25, m.average(at(20*s)), 0.03)
	})
	t.Run("the window slides", func(t *testing.T) {
		m := newMeter(5*s, t0)
		m.set(t0, 4)
		m.set(at(5*s), 0)
		assert.InDelta(t, 4, m.average(at(5*s)), 0.01)
		assert.InDelta(t, 2, m.average(at(7500*time.Millisecond)), 0.1, "half the window since the load ended")
		assert.InDelta(t, 0, m.average(at(10*s)), 0.01)
	})
	t.Run("a count held longer than the window", func(t *testing.T) {
		m := newMeter(5*s, t0)
		m.set(t0, 3)
		assert.InDelta(t, 3, m.average(at(time.Hour)), 0.01)
		m.set(at(time.Hour), 0)
		assert.InDelta(t, 0, m.average(at(2*time.Hour)), 0.01)
	})
	t.Run("a clock that stands still", func(t *testing.T) {
		m := newMeter(5*s, t0)
		m.set(t0, 2)
		m.set(t0, 1)
		assert.InDelta(t, 1, m.average(at(5*s)), 0.01)
		assert.Equal(t, m.average(at(5*s)), m.average(at(4*s)), "a look back in time changes nothing")
	})
	t.Run("no window", func(t *testing.T) {
		assert.Nil(t, newMeter(0, t0))
	})
}
