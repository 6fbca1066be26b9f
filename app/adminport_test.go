package app

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/zap/zapcore"

	"github.com/gleitzeit/gleitzeit/app/config"
	"github.com/gleitzeit/gleitzeit/internal/ollamatest"
	"github.com/gleitzeit/gleitzeit/internal/testkit"
	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// at is the service as reached on another of its listeners.
func (s *service) at(addr net.Addr) *service {
	on := *s
	on.base = "http://" + addr.String()
	return &on
}

// get answers a GET's status and body.
func (s *service) get(path string) (int, string) {
	s.t.Helper()
	client := &http.Client{Timeout: testkit.Wait}
	resp, err := client.Get(s.base + path)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(s.t, err)
	return resp.StatusCode, string(b)
}

// With admin_addr set, the admin API (/v1/providers in every
// method, /v1/pools) and /metrics answer on the admin listener and 404 on
// the main one, whatever the spelling of their path; the probes and the
// tasks answer on the main listener and 404 on the admin one. A
// NetworkPolicy can then admit the admin API from fewer places than tasks.
func TestAdminAddrServesTheAdminAPIOnItsOwnPort(t *testing.T) {
	const token = "t0ken"
	s := start(t, "admin_token: "+token+"\nadmin_addr: 127.0.0.1:0\n")
	require.NotNil(t, s.admin.port, "admin_addr is set: the admin API has a listener of its own")
	admin := s.at(s.admin.port.addr)
	require.NotEqual(t, s.base, admin.base)

	// The admin API and /metrics: on the admin port only.
	add := map[string]string{"id": "echo-2", "template": "echo"}
	assert.Equal(t, 404, s.call("POST", "/v1/providers", token, add, nil), "POST /v1/providers on the main port")
	assert.Equal(t, 201, admin.call("POST", "/v1/providers", token, add, nil))
	assert.Equal(t, 404, s.call("DELETE", "/v1/providers/echo-2", token, nil, nil), "DELETE /v1/providers/{id} on the main port")
	assert.Equal(t, 200, admin.call("DELETE", "/v1/providers/echo-2", token, nil, nil))
	for _, path := range []string{"/v1/providers", "/v1/pools", "/metrics"} {
		code, _ := s.get(path)
		assert.Equal(t, 404, code, "GET %s on the main port", path)
		code, body := admin.get(path)
		assert.Equal(t, 200, code, "GET %s on the admin port: %s", path, body)
	}
	_, metrics := admin.get("/metrics")
	assert.Contains(t, metrics, "gleitzeit_", "the admin port serves the service's metrics")
	for _, path := range []string{"/v1//providers", "/metrics/", "/v1/pools/", "/healthz/../metrics", "/v1/providers/echo-1"} {
		code, body := s.get(path) // the client follows the mux's redirects, if any
		assert.Equal(t, 404, code, "GET %s on the main port: %s", path, body)
	}

	// The probes and the tasks: on the main port only.
	for _, path := range []string{"/healthz", "/readyz"} {
		code, body := s.get(path)
		assert.Equal(t, 200, code, "GET %s on the main port: %s", path, body)
		code, _ = admin.get(path)
		assert.Equal(t, 404, code, "GET %s on the admin port", path)
	}
	code, rec, msg := s.task("echo/v1", "echo", map[string]any{"x": 1})
	require.Equal(t, 200, code, msg)
	code, _, _ = admin.task("echo/v1", "echo", map[string]any{"x": 1})
	assert.Equal(t, 404, code, "POST /v1/tasks on the admin port")
	assert.Equal(t, 200, s.call("GET", "/v1/tasks/"+rec.ID, "", nil, nil))
	assert.Equal(t, 404, admin.call("GET", "/v1/tasks/"+rec.ID, "", nil, nil), "GET /v1/tasks/{id} on the admin port")
	assert.Equal(t, 404, admin.call("DELETE", "/v1/tasks/"+rec.ID, "", nil, nil), "DELETE /v1/tasks/{id} on the admin port")

	// Both listeners close with the service.
	s.stop()
	for _, addr := range []net.Addr{s.admin.addr, s.admin.port.addr} {
		c, err := net.Dial("tcp", addr.String())
		if err == nil {
			_ = c.Close()
		}
		assert.Error(t, err, "%s is closed once the service has stopped", addr)
	}
}

// Without admin_addr, one listener serves it all, as before.
func TestNoAdminAddrServesEverythingOnOnePort(t *testing.T) {
	s := start(t, "")
	assert.Nil(t, s.admin.port)
	for _, path := range []string{"/healthz", "/readyz", "/v1/providers", "/v1/pools", "/metrics"} {
		code, body := s.get(path)
		assert.Equal(t, 200, code, "GET %s: %s", path, body)
	}
}

// A port in use on admin_addr fails the start, naming admin_addr,
// and leaves the main listener closed.
func TestAdminAddrInUseFailsTheStart(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()

	llm := ollamatest.Start()
	t.Cleanup(llm.Close)
	cfg := serviceConfig(t, llm.URL(), "", "admin_addr: "+taken.Addr().String()+"\n")
	s, err := config.Load([]string{"-config", write(t, "c.yaml", cfg)}, noEnv, io.Discard)
	require.NoError(t, err)
	var admin *adminServer
	var reg *lifecycle.Registry
	app := fx.New(Options(s, newLogger("console", zapcore.InfoLevel, &testkit.LockedBuffer{}), NewMetrics()), fx.Populate(&admin, &reg), fx.NopLogger)
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Wait)
	defer cancel()
	err = app.Start(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "listen on admin_addr "+taken.Addr().String())
	assert.Contains(t, err.Error(), "address already in use")
	require.NoError(t, app.Stop(ctx))
	assert.Nil(t, admin.addr, "the main listener never served")
}
