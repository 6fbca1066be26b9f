package testkit

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Settle notes the goroutines alive now and returns a function that waits,
// within [Wait], until every goroutine started since has ended, and fails
// the test, naming them, if one has not.
//
// It is for a test that must show that something never happens later (a
// cleanup run a second time, an Initialize begun after Stop) while the
// code under test runs on real time, with the races that brings: once
// every goroutine that could do it has ended, nothing can, so no sleep has
// to guess how long they take. A test on a fake clock (testing/synctest)
// has synctest.Wait for this instead.
func Settle(t testing.TB) (settled func()) {
	ignore := goleak.IgnoreCurrent()
	return func() {
		t.Helper()
		deadline := time.Now().Add(Wait)
		for {
			err := goleak.Find(ignore) // retries for a while itself
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("goroutines still running %v after they were expected to end: %v", Wait, err)
			}
		}
	}
}
