package lifecycletest_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/gleitzeit/gleitzeit/lifecycle"
	"github.com/gleitzeit/gleitzeit/lifecycle/lifecycletest"
)

// Journal is a provider: a file it opens in Initialize and closes in its
// cleanup.
type Journal struct {
	path string
	f    *os.File
}

func (j *Journal) ID() string { return "journal" }

func (j *Journal) Initialize(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := os.OpenFile(j.path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	j.f = f
	return err
}

func (j *Journal) Cleanup(context.Context) error {
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}

func (j *Journal) HealthCheck(context.Context) lifecycle.Health {
	if j.f == nil {
		return lifecycle.Health{Status: lifecycle.StatusUnhealthy, Message: "closed", Resources: map[string]any{"open": false}}
	}
	return lifecycle.Health{Status: lifecycle.StatusHealthy, Message: "open", Resources: map[string]any{"open": true}}
}

// TestJournal is the kit's runnable example: how a provider's package
// runs it, with a function that makes a fresh provider, and the options.
// (A Go Example function has no *testing.T to give the kit.)
func TestJournal(t *testing.T) {
	dir := t.TempDir()
	lifecycletest.Run(t, func(t *testing.T) lifecycle.Provider {
		return &Journal{path: filepath.Join(dir, "journal.log")}
	}, lifecycletest.Skip(lifecycletest.Concurrent, "a Journal is used by one goroutine: it has no lock"))
}
