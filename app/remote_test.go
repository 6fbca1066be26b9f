package app

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gleitzeit/gleitzeit/internal/mcptest"
	"github.com/gleitzeit/gleitzeit/internal/testkit"
	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// An mcp template with mcp: {url, headers} serves tasks from a server that
// is already running, over Streamable HTTP, with the header's token read
// from the environment; when the server goes away the pool and readiness
// say so, and when it comes back the pool reconnects by itself.
func TestARemoteMCPServerIsPooledAndReconnected(t *testing.T) {
	srv := mcptest.EverythingHTTP(t)
	var unauthorized atomic.Int64
	proxy := srv.Proxy()
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t0ken-from-env" {
			unauthorized.Add(1)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	t.Setenv("GLEITZEIT_TEST_MCP_TOKEN", "t0ken-from-env")

	s := startWith(t, fmt.Sprintf(`  remote:
    kind: mcp
    critical: true
    mcp: {url: %q, headers: {Authorization: "Bearer ${GLEITZEIT_TEST_MCP_TOKEN}"}}
    pool: {min: 1, max: 2, per_instance: 4}
    restart: {backoff: 50ms, max_backoff: 500ms}`, front.URL+"/mcp"), "")
	s.waitHealthy()

	echo := map[string]any{"name": "echo", "arguments": map[string]string{"message": "from afar"}}
	code, rec, msg := s.task("mcp/v1", "tools/call", echo)
	require.Equal(t, 200, code, msg)
	assert.Equal(t, "remote-1", rec.Provider)
	assert.Contains(t, string(rec.Output), "from afar")

	var list struct{ Providers []ProviderView }
	require.Equal(t, 200, s.call("GET", "/v1/providers", "", nil, &list))
	var remote *ProviderView
	for i := range list.Providers {
		if list.Providers[i].ID == "remote-1" {
			remote = &list.Providers[i]
		}
	}
	require.NotNil(t, remote, "providers: %+v", list.Providers)
	assert.Equal(t, lifecycle.StatusHealthy, remote.Health.Status)
	assert.Equal(t, front.URL+"/…", remote.Health.Resources["url"], "scheme and host: a path or query may hold a secret")

	srv.Stop()
	require.Eventually(t, func() bool { code, _ := s.readiness(); return code == 503 }, testkit.Wait, 10*time.Millisecond,
		"readiness never said the server was gone; log:\n%s", s.logs)
	code, _, msg = s.task("mcp/v1", "tools/call", echo)
	assert.NotEqual(t, 200, code, msg)

	srv.Start()
	require.Eventually(t, func() bool { code, _ := s.readiness(); return code == 200 }, 3*testkit.Wait, 20*time.Millisecond,
		"the pool never reconnected; log:\n%s", s.logs)
	code, _, msg = s.task("mcp/v1", "tools/call", echo)
	require.Equal(t, 200, code, msg)
	assert.Zero(t, unauthorized.Load(), "every request carried the token")
	assert.Contains(t, s.logs.String(), "mcp session ended")
	assert.Contains(t, s.logs.String(), "remote session ended", "the pool says what it replaced")
	assert.NotContains(t, s.logs.String(), "child process", "a remote server is no child")
	assert.NotContains(t, s.logs.String(), "t0ken-from-env")
}
