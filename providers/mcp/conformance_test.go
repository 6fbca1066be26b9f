package mcp_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gleitzeit/gleitzeit/internal/mcptest"
	"github.com/gleitzeit/gleitzeit/internal/testkit"
	"github.com/gleitzeit/gleitzeit/lifecycle"
	"github.com/gleitzeit/gleitzeit/lifecycle/lifecycletest"
	"github.com/gleitzeit/gleitzeit/providers/mcp"
)

// A client of the reference server keeps the contract: no node process,
// pipe or goroutine outlives its cleanup. A server that exits at once
// fails its Initialize.
func TestTheClientKeepsTheContract(t *testing.T) {
	argv := mcptest.Everything(t)
	fresh := func(argv []string) func(*testing.T) lifecycle.Provider {
		return func(t *testing.T) lifecycle.Provider {
			var cfg mcp.Config
			cfg.Process.ID, cfg.Process.Command, cfg.Process.Stderr = "everything", argv, &testkit.LockedBuffer{}
			c, err := mcp.New(cfg)
			require.NoError(t, err)
			return c
		}
	}
	lifecycletest.Run(t, fresh(argv), lifecycletest.Failing(fresh([]string{"/bin/false"})))
}

// A client of the reference server over Streamable HTTP keeps it too: its
// bearer token in no error or health, the session closed by its cleanup.
func TestTheRemoteClientKeepsTheContract(t *testing.T) {
	srv := mcptest.EverythingHTTP(t)
	fresh := func(url string) func(*testing.T) lifecycle.Provider {
		return func(t *testing.T) lifecycle.Provider {
			c, err := mcp.New(mcp.Config{Remote: mcp.Remote{ID: "remote", URL: url,
				Header: http.Header{"Authorization": {"Bearer hunter2"}}}})
			require.NoError(t, err)
			return c
		}
	}
	// A Timeout well under the seconds a keep-alive connection the cleanup
	// forgot would linger for, and far over a loopback handshake's.
	lifecycletest.Run(t, fresh(srv.URL), lifecycletest.Secret("hunter2"), lifecycletest.Timeout(3*time.Second),
		lifecycletest.Failing(fresh("http://127.0.0.1:1/mcp")))
}
