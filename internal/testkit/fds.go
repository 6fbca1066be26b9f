package testkit

import (
	"os"
	"testing"
)

// OpenFDs counts the process's open file descriptors, from /proc/self/fd.
func OpenFDs(t testing.TB) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("count open file descriptors: %v", err)
	}
	return len(entries) - 1 // the directory's own descriptor, open while it is read
}
