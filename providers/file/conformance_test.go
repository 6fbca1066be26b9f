package file_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gleitzeit/gleitzeit/lifecycle"
	"github.com/gleitzeit/gleitzeit/lifecycle/lifecycletest"
	"github.com/gleitzeit/gleitzeit/providers/file"
)

// The writer keeps the contract on a real file; one whose directory does
// not exist fails its Initialize.
func TestTheWriterKeepsTheContract(t *testing.T) {
	dir := t.TempDir()
	lifecycletest.Run(t, func(t *testing.T) lifecycle.Provider {
		w, err := file.New(file.Config{Path: filepath.Join(dir, "audit.jsonl")})
		require.NoError(t, err)
		return w
	}, lifecycletest.Failing(func(t *testing.T) lifecycle.Provider {
		w, err := file.New(file.Config{Path: filepath.Join(dir, "missing", "audit.jsonl")})
		require.NoError(t, err)
		return w
	}))
}
