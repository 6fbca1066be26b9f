package testkit

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Wait bounds every wait in the tests: longer than anything that works
// takes, even under the race detector on a loaded machine.
const Wait = 10 * time.Second

// Journal records what providers and components did, in the order they
// did it. It is safe for concurrent use.
type Journal struct {
	mu      sync.Mutex
	entries []string
}

// Add records an entry.
func (j *Journal) Add(entry string) {
	j.mu.Lock()
	j.entries = append(j.entries, entry)
	j.mu.Unlock()
}

// All returns the entries so far.
func (j *Journal) All() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.entries)
}

// Index returns where entry first is in the journal, or -1.
func (j *Journal) Index(entry string) int { return slices.Index(j.All(), entry) }

// Has reports whether entry was recorded.
func (j *Journal) Has(entry string) bool { return j.Index(entry) >= 0 }

// Before fails the test unless a was recorded and b, if recorded at all,
// came after it.
func (j *Journal) Before(t testing.TB, a, b string) {
	t.Helper()
	all := j.All()
	ia, ib := slices.Index(all, a), slices.Index(all, b)
	require.GreaterOrEqual(t, ia, 0, "%q never happened; journal: %v", a, all)
	require.Greater(t, ib, ia, "%q should come after %q; journal: %v", b, a, all)
}

// Receive returns the next value from ch, or fails the test if none comes
// within [Wait].
func Receive[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(Wait):
		t.Fatalf("%s did not return within %v", what, Wait)
		panic("unreachable")
	}
}

// Within runs fn on a goroutine and fails the test if it has not returned
// within [Wait].
func Within(t testing.TB, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	Receive(t, done, what)
}

// Go runs fn on a goroutine and returns a channel that receives its
// result, for [Receive].
func Go[T any](fn func() T) <-chan T {
	ch := make(chan T, 1)
	go func() { ch <- fn() }()
	return ch
}

// Gate returns a channel that open closes, to release whatever waits on
// it. The test's cleanup opens it too, so that no goroutine outlives the
// test; open may be called any number of times.
func Gate(t testing.TB) (ch <-chan struct{}, open func()) {
	c := make(chan struct{})
	var once sync.Once
	open = func() { once.Do(func() { close(c) }) }
	t.Cleanup(open)
	return c, open
}
