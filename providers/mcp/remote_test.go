package mcp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gleitzeit/gleitzeit/internal/mcptest"
	"github.com/gleitzeit/gleitzeit/internal/testkit"
	"github.com/gleitzeit/gleitzeit/lifecycle"
	"github.com/gleitzeit/gleitzeit/providers/mcp"
)

// remote builds a client of the server at url over Streamable HTTP,
// initialized, and cleans it up at the test's end.
func remote(t *testing.T, r mcp.Remote) (*mcp.Client, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	c, err := mcp.New(mcp.Config{Remote: r, Log: zap.New(core)})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testkit.Wait)
		defer cancel()
		_ = c.Cleanup(ctx)
	})
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Wait)
	defer cancel()
	require.NoError(t, c.Initialize(ctx))
	return c, logs
}

// The real server over Streamable HTTP, as over stdio: the handshake,
// health, tools, a tool's error, progress as it comes, and a clean close.
func TestEverythingOverHTTP(t *testing.T) {
	srv := mcptest.EverythingHTTP(t)
	c, _ := remote(t, mcp.Remote{ID: "remote", URL: srv.URL})

	h := c.HealthCheck(context.Background())
	require.Equal(t, lifecycle.StatusHealthy, h.Status, h.Message)
	assert.Equal(t, "mcp-servers/everything", h.Resources["server_name"])
	assert.Equal(t, mcp.LatestVersion, h.Resources["protocol_version"])
	assert.Equal(t, strings.TrimSuffix(srv.URL, "/mcp")+"/…", h.Resources["url"], "scheme and host: a path or query may hold a secret")
	assert.True(t, c.Running())
	assert.False(t, c.Reaped())

	result, err := callTool(t, c, "echo", map[string]string{"message": "over http"})
	require.NoError(t, err)
	assert.Contains(t, text(t, result), "over http")

	_, err = callTool(t, c, "no-such-tool", map[string]any{})
	require.Error(t, err)

	// A minute-long call, cancelled from its first progress: that came
	// while the call ran.
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Wait)
	defer cancel()
	var early int
	_, err = c.CallWithProgress(ctx, "tools/call", toolParams(t, "trigger-long-running-operation",
		map[string]any{"duration": 60, "steps": 60}, nil), func(json.RawMessage) {
		early++
		cancel()
	})
	require.ErrorIs(t, err, context.Canceled)
	assert.Positive(t, early)

	ctx, cancel = context.WithTimeout(context.Background(), testkit.Wait)
	defer cancel()
	const steps = 5
	var got []float64
	result, err = c.CallWithProgress(ctx, "tools/call", toolParams(t, "trigger-long-running-operation",
		map[string]any{"duration": 0.5, "steps": steps}, nil), func(p json.RawMessage) {
		var n struct{ Progress float64 }
		require.NoError(t, json.Unmarshal(p, &n))
		got = append(got, n.Progress)
	})
	require.NoError(t, err)
	assert.NotEmpty(t, text(t, result))
	require.GreaterOrEqual(t, len(got), steps-1, "the steps before the last, at least: %v", got)
	for i, p := range got {
		assert.Equal(t, float64(i+1), p)
	}

	require.NoError(t, c.Cleanup(context.Background()))
	assert.False(t, c.Running())
	assert.Equal(t, lifecycle.StatusUnhealthy, c.HealthCheck(context.Background()).Status)
}

// Remote.Header goes with every request, the session's stream included,
// and its values appear in no error.
func TestRemoteHeadersAreSent(t *testing.T) {
	srv := mcptest.EverythingHTTP(t)
	var mu sync.Mutex
	var seen []string
	proxy := srv.Proxy()
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.Header.Get("Authorization"))
		mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)

	c, _ := remote(t, mcp.Remote{URL: front.URL + "/mcp", Header: http.Header{"Authorization": {"Bearer s3cret-token"}}})
	_, err := callTool(t, c, "echo", map[string]string{"message": "hi"})
	require.NoError(t, err)
	require.NoError(t, c.Cleanup(context.Background()))
	front.CloseClientConnections()

	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, seen)
	methods := map[string]bool{}
	for _, s := range seen {
		assert.Contains(t, s, " Bearer s3cret-token", "every request carries the header")
		methods[s[:len(s)-len(" Bearer s3cret-token")]] = true
	}
	assert.True(t, methods["POST"], "requests: %v", seen)
	assert.True(t, methods["DELETE"], "the session is ended: %v", seen)
}

// A server that goes away ends the session: calls fail with
// ErrSessionEnded, health says so, OnEnd is told, once; the server back,
// a new client of it works. A URL's password appears in none of it.
func TestARemoteSessionThatEndsIsTold(t *testing.T) {
	srv := mcptest.EverythingHTTP(t)
	ended := make(chan error, 2)
	u, err := url.Parse(srv.URL)
	require.NoError(t, err)
	u.User = url.UserPassword("app", "hunter2")
	u.RawQuery = "sig=sigsecret" // a form no redaction rule knows
	c, logs := remote(t, mcp.Remote{URL: u.String(), OnEnd: func(err error) { ended <- err }})
	require.True(t, c.Running())

	srv.Stop()
	why := testkit.Receive(t, ended, "OnEnd, once the server is gone")
	require.ErrorIs(t, why, mcp.ErrSessionEnded)
	assert.NotContains(t, why.Error(), "hunter2")
	assert.NotContains(t, why.Error(), "sigsecret")
	assert.False(t, c.Running())

	_, err = callTool(t, c, "echo", map[string]string{"message": "anyone?"})
	require.ErrorIs(t, err, mcp.ErrSessionEnded)
	assert.NotContains(t, err.Error(), "hunter2")
	assert.NotContains(t, err.Error(), "sigsecret")
	h := c.HealthCheck(context.Background())
	assert.Equal(t, lifecycle.StatusUnhealthy, h.Status)
	assert.Contains(t, h.Message, mcp.ErrSessionEnded.Error())
	assert.NotContains(t, h.Message, "hunter2")
	assert.NotContains(t, h.Message, "sigsecret")
	assert.NotContains(t, fmt.Sprint(h.Resources), "sigsecret")
	assert.Equal(t, 1, logs.FilterMessage("mcp session ended").Len())
	for _, e := range logs.All() {
		for k, v := range e.ContextMap() {
			assert.NotContains(t, fmt.Sprint(v), "hunter2", "%s of %q", k, e.Message)
			assert.NotContains(t, fmt.Sprint(v), "sigsecret", "%s of %q", k, e.Message)
		}
	}

	srv.Start()
	again, _ := remote(t, mcp.Remote{URL: srv.URL})
	_, err = callTool(t, again, "echo", map[string]string{"message": "back"})
	require.NoError(t, err)
	require.NoError(t, c.Cleanup(context.Background()))
	assert.Empty(t, ended, "OnEnd is told once, and not for Cleanup")
}

// A server that cannot be reached fails Initialize, naming why and not
// the URL's password; Cleanup after it holds nothing.
func TestAnUnreachableRemoteFailsInitialize(t *testing.T) {
	l := httptest.NewServer(http.NotFoundHandler())
	addr := l.URL
	l.Close() // nothing listens there now
	c, err := mcp.New(mcp.Config{Remote: mcp.Remote{URL: "http://app:hunter2@" + addr[len("http://"):] + "/mcp/sk-pathsecret?key=keysecret"}})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Wait)
	defer cancel()
	err = c.Initialize(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "connect")
	assert.Contains(t, err.Error(), addr+"/…", "the server named by its scheme and host")
	for _, secret := range []string{"hunter2", "pathsecret", "keysecret"} {
		assert.NotContains(t, err.Error(), secret)
	}
	require.NoError(t, c.Cleanup(context.Background()))
	assert.False(t, c.Running())
}

func TestRemoteConfigIsChecked(t *testing.T) {
	for _, give := range []string{"ftp://app:hunter2@host/mcp", "http:///mcp", "http://app:hunter2@[::1/mcp"} {
		_, err := mcp.New(mcp.Config{Remote: mcp.Remote{URL: give}})
		require.Error(t, err, give)
		assert.NotContains(t, err.Error(), "hunter2")
	}
	for _, name := range []string{"Mcp-Session-Id", "accept", "Content-Type", "MCP-Protocol-Version"} {
		_, err := mcp.New(mcp.Config{Remote: mcp.Remote{URL: "http://h/mcp", Header: http.Header{name: {"x"}}}})
		require.ErrorContains(t, err, "is the transport's own", name)
	}
}

// A server that stops answering holds no Cleanup: the call in flight is
// ended, and the session's close is bounded.
func TestCleanupOfAHungRemoteIsBounded(t *testing.T) {
	srv := mcptest.EverythingHTTP(t)
	proxy := srv.Proxy()
	var frozen atomic.Bool
	held, release := make(chan struct{}, 16), make(chan struct{})
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if frozen.Load() && r.Method != http.MethodGet {
			select {
			case held <- struct{}{}:
			default:
			}
			select { // accepted, never answered while the test runs
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	t.Cleanup(func() { close(release) }) // first: what it holds ends
	c, _ := remote(t, mcp.Remote{URL: front.URL + "/mcp"})

	frozen.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	call := testkit.Go(func() error {
		_, err := c.Call(ctx, "tools/call", toolParams(t, "echo", map[string]string{"message": "x"}, nil))
		return err
	})
	testkit.Receive(t, held, "the call, held by the server")
	cleaned := testkit.Go(func() error { return c.Cleanup(ctx) })
	require.ErrorIs(t, testkit.Receive(t, call, "the call in flight, ended by Cleanup"), mcp.ErrSessionEnded)
	testkit.Receive(t, cleaned, "Cleanup, within the session's close bound")
}

// A remote server that redirects is not followed: the headers, and the
// URL as a Referer, go to no other server, and the error names the
// server by its scheme and host.
func TestARemoteRedirectIsNotFollowed(t *testing.T) {
	var reached atomic.Int64
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		http.Error(w, "nothing here", http.StatusNotFound)
	}))
	t.Cleanup(elsewhere.Close)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+"/collect", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(front.Close)
	c, err := mcp.New(mcp.Config{Remote: mcp.Remote{URL: front.URL + "/mcp/sk-pathsecret?sig=sigsecret",
		Header: http.Header{"Authorization": {"Bearer t0ken"}}}})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Wait)
	defer cancel()
	err = c.Initialize(ctx)
	require.Error(t, err)
	assert.Zero(t, reached.Load(), "the redirect was not followed")
	for _, secret := range []string{"pathsecret", "sigsecret", "t0ken"} {
		assert.NotContains(t, err.Error(), secret)
	}
	require.NoError(t, c.Cleanup(context.Background()))
}
