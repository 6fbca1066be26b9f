package pool

import "time"

// meterSlots is how many slots a meter's window is cut into. One more is
// kept: the window's oldest slot is partly in it.
const meterSlots = 10

// meter averages the tasks in flight over a sliding window, each count
// weighted by how long it held. One task in flight on one instance is full
// load for that instant, not for the window: a client that sends tasks one
// at a time, with pauses between, does not make a pool grow. It averages
// the tasks rather than the utilization so that an instance added halves
// the utilization at once: a window still full of the load that grew the
// pool must not grow it again. Time before the meter began counts as idle,
// so a pool just started grows on load it has seen for most of a window,
// not on its first task. Its memory is fixed: the window is cut into
// slots, each holding the integral of the count over its span, in slots.
type meter struct {
	slot  time.Duration
	area  [meterSlots + 1]float64 // slot k's integral is at index(k)
	cur   int64                   // the slot that holds last
	began time.Time               // where slot 0 begins
	last  time.Time               // up to when u has been integrated
	n     float64                 // tasks in flight since last
}

// newMeter returns a meter over window, idle until now; nil for a window
// of 0, which takes the tasks in flight at the instant.
func newMeter(window time.Duration, now time.Time) *meter {
	if window <= 0 {
		return nil
	}
	return &meter{slot: max(window/meterSlots, time.Microsecond), began: now, last: now}
}

// set records that n tasks are in flight from now on.
func (m *meter) set(now time.Time, n int) {
	m.advance(now)
	m.n = float64(n)
}

// average is the tasks in flight over the window that ends now: the slot
// now is in, so far, the whole slots before it, and the part of the
// oldest that is still in the window, taken at that slot's average.
func (m *meter) average(now time.Time) float64 {
	m.advance(now)
	sum := 0.0
	for i := range int64(meterSlots) {
		sum += m.area[index(m.cur-i)]
	}
	into := float64(m.last.Sub(m.start(m.cur))) / float64(m.slot)
	sum += (1 - into) * m.area[index(m.cur-meterSlots)]
	return sum / meterSlots
}

// advance integrates n from last up to now.
func (m *meter) advance(now time.Time) {
	if !now.After(m.last) {
		return
	}
	if now.Sub(m.last) > meterSlots*m.slot {
		// n held for longer than the window: every slot is at n.
		m.cur = int64(now.Sub(m.began) / m.slot)
		m.last = now
		for i := range m.area {
			m.area[i] = m.n
		}
		m.area[index(m.cur)] = m.n * float64(now.Sub(m.start(m.cur))) / float64(m.slot)
		return
	}
	for m.last.Before(now) {
		end := m.start(m.cur + 1)
		upto := end
		if now.Before(end) {
			upto = now
		}
		m.area[index(m.cur)] += m.n * float64(upto.Sub(m.last)) / float64(m.slot)
		m.last = upto
		if upto.Equal(end) {
			m.cur++
			m.area[index(m.cur)] = 0
		}
	}
}

func (m *meter) start(k int64) time.Time { return m.began.Add(time.Duration(k) * m.slot) }

// index is where slot k's integral is kept; slots before the meter began
// map to slots never written, which are idle.
func index(k int64) int64 {
	const n = meterSlots + 1
	return (k%n + n) % n
}
