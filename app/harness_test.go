package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sourcegraph/jsonrpc2"
	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
	"go.uber.org/goleak"

	"github.com/gleitzeit/gleitzeit/internal/ollamatest"
	"github.com/gleitzeit/gleitzeit/internal/testkit"
	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// helperEnv makes this test binary a JSON-RPC child: "echo" returns its
// params, "sleep" sleeps its params' milliseconds, "pid" returns the pid.
const helperEnv = "GLEITZEIT_APP_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		helper()
		return
	}
	goleak.VerifyTestMain(m)
}

func helper() {
	conn := jsonrpc2.NewConn(context.Background(), jsonrpc2.NewPlainObjectStream(stdio{}),
		jsonrpc2.HandlerWithError(func(_ context.Context, _ *jsonrpc2.Conn, r *jsonrpc2.Request) (any, error) {
			var params json.RawMessage
			if r.Params != nil {
				params = *r.Params
			}
			switch r.Method {
			case "echo":
				return params, nil
			case "sleep":
				var ms int
				_ = json.Unmarshal(params, &ms)
				time.Sleep(time.Duration(ms) * time.Millisecond)
				return "slept", nil
			case "pid":
				return os.Getpid(), nil
			case "ping":
				return "pong", nil
			}
			return nil, &jsonrpc2.Error{Code: jsonrpc2.CodeMethodNotFound, Message: "no method " + r.Method}
		}))
	<-conn.DisconnectNotify()
	os.Exit(0)
}

type stdio struct{}

func (stdio) Read(b []byte) (int, error)  { return os.Stdin.Read(b) }
func (stdio) Write(b []byte) (int, error) { return os.Stdout.Write(b) }
func (stdio) Close() error                { return os.Stdin.Close() }

// config is a service configuration for the tests: the loopback Ollama
// server as the "llm" template, this binary as the "echo" template, and
// what extra says.
func config(t testing.TB, llmURL, extra string) string {
	t.Helper()
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
      command: [%q, "-test.run=^$"]
      env: [%s=1]
      grace: 1s
      health_method: ping
providers:
  - {id: llm-1, template: llm}
  - {id: echo-1, template: echo}
%s`, t.TempDir(), llmURL, os.Args[0], helperEnv, extra)
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
	settings *Settings
	logs     *lockedWriter
	stopped  bool
}

func start(t testing.TB, extra string) *service {
	t.Helper()
	llm := ollamatest.Start()
	t.Cleanup(llm.Close)
	s, err := Load([]string{"-config", write(t, "c.yaml", config(t, llm.URL(), extra))}, noEnv, io.Discard)
	require.NoError(t, err)
	svc := &service{t: t, llm: llm, logs: &lockedWriter{w: &bytes.Buffer{}}}
	log := newLogger("console", svc.logs)
	svc.settings = s
	svc.app = fxtest.New(t, Options(s, log, NewMetrics()), fx.Populate(&svc.engine, &svc.reg, &svc.admin))
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

// lockedWriter lets the test read the logs while the service writes them.
type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
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

func (s *service) task(protocol, method string, params any) (int, TaskRecord, string) {
	s.t.Helper()
	var out struct {
		TaskRecord
		Error string     `json:"error"`
		Task  TaskRecord `json:"task"`
	}
	code := s.call("POST", "/v1/tasks", "", map[string]any{"protocol": protocol, "method": method, "params": params}, &out)
	if out.Error != "" {
		return code, out.Task, out.Error
	}
	return code, out.TaskRecord, ""
}

func auditLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}
