package process_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gleitzeit/gleitzeit/internal/rpctest"
	"github.com/gleitzeit/gleitzeit/internal/testkit"
	"github.com/gleitzeit/gleitzeit/lifecycle"
	"github.com/gleitzeit/gleitzeit/lifecycle/lifecycletest"
	"github.com/gleitzeit/gleitzeit/providers/process"
)

// A child speaking JSON-RPC keeps the contract: no child, pipe or
// goroutine outlives its cleanup. One that exits before it answers fails
// its Initialize.
func TestTheProcessKeepsTheContract(t *testing.T) {
	lifecycletest.Run(t, func(t *testing.T) lifecycle.Provider {
		argv, env := rpctest.Command(rpctest.Server, false)
		p, err := process.New(process.Config{ID: "worker", Command: argv, Env: env, HealthMethod: "ping",
			Stderr: &testkit.LockedBuffer{}})
		require.NoError(t, err)
		return p
	}, lifecycletest.Failing(func(t *testing.T) lifecycle.Provider {
		p, err := process.New(process.Config{ID: "worker", Command: []string{"/bin/false"}, ReadyMethod: "ping"})
		require.NoError(t, err)
		return p
	}))
}
