package main

import (
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gleitzeit/gleitzeit/internal/ollamatest"
	"github.com/gleitzeit/gleitzeit/internal/testkit"
)

// kill -9 under load, with group commit: every task answered 2xx is in the
// store when the service starts again, with the outcome it was answered
// with. A 2xx means committed, whatever batch the record was committed in.
func TestKill9UnderLoadLosesNoAnsweredTask(t *testing.T) {
	llm := ollamatest.Start()
	defer llm.Close()
	addr, data := freeAddr(t), t.TempDir()
	cfg := config(t, addr, data, llm.URL(), "")
	svc := run(t, cfg)
	svc.waitReady(addr)

	var (
		mu       sync.Mutex
		answered []string
		stop     atomic.Bool
		clients  sync.WaitGroup
	)
	for range 16 {
		clients.Go(func() {
			for !stop.Load() {
				code, id, err := post(svc.base, `{"protocol": "work/v1", "method": "echo", "params": [1]}`)
				if err != nil {
					return // the service is gone
				}
				if code == 200 {
					mu.Lock()
					answered = append(answered, id)
					mu.Unlock()
				}
			}
		})
	}
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(answered) >= 500
	}, 30*time.Second, 5*time.Millisecond, "the service answered too few tasks:\n%s", svc.stderr)
	require.NoError(t, svc.cmd.Process.Signal(syscall.SIGKILL))
	svc.exitCode()
	stop.Store(true)
	testkit.Within(t, "the clients", clients.Wait)

	mu.Lock()
	ids := append([]string(nil), answered...)
	mu.Unlock()
	t.Logf("%d tasks answered 200 before kill -9", len(ids))
	again := run(t, cfg)
	again.waitReady(addr)
	requireStoredOK(t, again.base, ids)
	require.NoError(t, again.cmd.Process.Signal(syscall.SIGTERM))
	assert.Equal(t, 0, again.exitCode())
}
