package app

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
	"go.uber.org/goleak"
	"go.uber.org/zap/zapcore"

	"github.com/gleitzeit/gleitzeit/app/config"
	"github.com/gleitzeit/gleitzeit/app/taskstore"
	"github.com/gleitzeit/gleitzeit/internal/mcptest"
	"github.com/gleitzeit/gleitzeit/internal/ollamatest"
	"github.com/gleitzeit/gleitzeit/internal/pgtest"
	"github.com/gleitzeit/gleitzeit/internal/rpctest"
	"github.com/gleitzeit/gleitzeit/internal/testkit"
	"github.com/gleitzeit/gleitzeit/lifecycle"
)

func TestMain(m *testing.M) {
	rpctest.Serve()
	mcptest.Serve()
	code := m.Run()
	if pg, err := postgres(); pg != nil && err == nil {
		pg.Stop()
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// postgres is a PostgreSQL server for the tests that need one, started by
// the first of them.
var postgres = sync.OnceValues(pgtest.Start)

func noEnv(string) string { return "" }

// write writes a file named name, holding content, in a directory of the
// test's own, and returns its path.
func write(t testing.TB, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

// serviceConfig is a service configuration for the tests: the loopback Ollama
// server as the "llm" template, this binary as the "echo" template, the
// templates given (indented by two spaces), and what extra says.
func serviceConfig(t testing.TB, llmURL, templates, extra string) string {
	t.Helper()
	argv, env := rpctest.Command(rpctest.Server, false)
	return fmt.Sprintf(`
addr: 127.0.0.1:0
data_dir: %s
log_format: console
health_interval: 50ms
provider_timeout: 5s
templates:
  llm:
    kind: ollama
    ollama: {url: %q}
  echo:
    kind: process
    protocol: echo/v1
    critical: true
    process:
      command: [%q, %q]
      env: [%q]
      grace: 1s
      health_method: ping
%s
providers:
  - {id: llm-1, template: llm}
  - {id: echo-1, template: echo}
%s`, t.TempDir(), llmURL, argv[0], argv[1], env[0], templates, extra)
}

// service is the service, running in this process.
type service struct {
	t        testing.TB
	app      *fxtest.App
	engine   *Engine
	reg      *lifecycle.Registry
	admin    *adminServer
	llm      *ollamatest.Server
	base     string
	settings *config.Settings
	logs     *testkit.LockedBuffer
	stopped  bool
}

func start(t testing.TB, extra string) *service {
	t.Helper()
	return startWith(t, "", extra)
}

// startWith starts the service with more templates, and fx options the
// test adds.
func startWith(t testing.TB, templates, extra string, opts ...fx.Option) *service {
	t.Helper()
	llm := ollamatest.Start()
	t.Cleanup(llm.Close)
	s, err := config.Load([]string{"-config", write(t, "c.yaml", serviceConfig(t, llm.URL(), templates, extra))}, noEnv, io.Discard)
	require.NoError(t, err)
	svc := &service{t: t, llm: llm, logs: &testkit.LockedBuffer{}}
	log := newLogger("console", zapcore.InfoLevel, svc.logs)
	svc.settings = s
	opts = append([]fx.Option{Options(s, log, NewMetrics()), fx.Populate(&svc.engine, &svc.reg, &svc.admin)}, opts...)
	svc.app = fxtest.New(t, opts...)
	svc.app.RequireStart()
	svc.base = "http://" + svc.admin.addr.String()
	t.Cleanup(svc.stop)
	return svc
}

func (s *service) stop() {
	if !s.stopped {
		s.stopped = true
		s.app.RequireStop()
	}
}

// call sends a request and decodes the JSON answer into out (if not nil).
func (s *service) call(method, path, token string, body any, out any) int {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(s.t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.base+path, rd)
	require.NoError(s.t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client := &http.Client{Timeout: testkit.Wait}
	resp, err := client.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(s.t, err)
	if out != nil {
		require.NoError(s.t, json.Unmarshal(data, out), "body: %s", data)
	}
	return resp.StatusCode
}

func (s *service) task(protocol, method string, params any) (int, taskstore.Record, string) {
	s.t.Helper()
	return s.taskWithin(protocol, method, params, "")
}

// taskWithin runs a task with its own timeout, if not "".
func (s *service) taskWithin(protocol, method string, params any, timeout string) (int, taskstore.Record, string) {
	s.t.Helper()
	var out struct {
		taskstore.Record
		Error string           `json:"error"`
		Task  taskstore.Record `json:"task"`
	}
	body := map[string]any{"protocol": protocol, "method": method, "params": params}
	if timeout != "" {
		body["timeout"] = timeout
	}
	code := s.call("POST", "/v1/tasks", "", body, &out)
	if out.Error != "" {
		return code, out.Task, out.Error
	}
	return code, out.Record, ""
}

func auditLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}
