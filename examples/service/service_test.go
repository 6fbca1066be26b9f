package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/gleitzeit/gleitzeit/internal/ollamatest"
	"github.com/gleitzeit/gleitzeit/internal/rpctest"
	"github.com/gleitzeit/gleitzeit/internal/testkit"
)

func TestMain(m *testing.M) {
	rpctest.Serve()
	goleak.VerifyTestMain(m)
}

// binary builds the service once per test binary run.
var binary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "gleitzeit-service-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "service")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %w\n%s", err, out)
	}
	return bin, nil
})

// running is the service binary, running.
type running struct {
	t      *testing.T
	cmd    *exec.Cmd
	base   string
	stderr *testkit.LockedBuffer
	stdout *testkit.LockedBuffer // the console trace exporter's, if asked for
	done   chan struct{}         // closed when the process has exited
	err    error                 // Wait's result, once done is closed
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

func run(t *testing.T, configPath string, env ...string) *running {
	t.Helper()
	return runArgs(t, []string{"-config", configPath}, env...)
}

// runArgs runs the service binary with the arguments given.
func runArgs(t *testing.T, args []string, env ...string) *running {
	t.Helper()
	bin, err := binary()
	require.NoError(t, err)
	r := &running{t: t, stderr: &testkit.LockedBuffer{}, stdout: &testkit.LockedBuffer{}, done: make(chan struct{})}
	r.cmd = exec.Command(bin, args...)
	r.cmd.Env = append(os.Environ(), env...)
	r.cmd.Stderr, r.cmd.Stdout = r.stderr, r.stdout
	require.NoError(t, r.cmd.Start())
	go func() { r.err = r.cmd.Wait(); close(r.done) }()
	t.Cleanup(func() {
		_ = r.cmd.Process.Kill() // if a test failed before it stopped the service
		<-r.done
	})
	return r
}

func (r *running) waitReady(addr string) {
	r.t.Helper()
	r.base = "http://" + addr
	require.Eventually(r.t, func() bool {
		select {
		case <-r.done:
			r.t.Fatalf("the service exited:\n%s", r.stderr)
		default:
		}
		resp, err := http.Get(r.base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, 30*time.Second, 20*time.Millisecond, "the service did not become ready:\n%s", r.stderr)
}

// exitCode waits for the service to exit and returns its exit code.
func (r *running) exitCode() int {
	r.t.Helper()
	select {
	case <-r.done:
		var ee *exec.ExitError
		if errors.As(r.err, &ee) {
			return ee.ExitCode()
		}
		require.NoError(r.t, r.err)
		return 0
	case <-time.After(30 * time.Second):
		r.t.Fatalf("the service did not exit:\n%s", r.stderr)
		return -1
	}
}

// providerView is what the tests read of /v1/providers.
type providerView struct {
	ID     string
	Kind   string
	Leases int
	Health struct{ Resources map[string]any }
}

func (r *running) providers() []providerView {
	r.t.Helper()
	resp, err := http.Get(r.base + "/v1/providers")
	require.NoError(r.t, err)
	defer resp.Body.Close()
	var list struct{ Providers []providerView }
	require.NoError(r.t, json.NewDecoder(resp.Body).Decode(&list))
	return list.Providers
}

// pids reads the child providers' pids from /v1/providers.
func (r *running) pids() map[string]int {
	r.t.Helper()
	out := map[string]int{}
	for _, p := range r.providers() {
		if p.Kind == "process" {
			out[p.ID] = int(p.Health.Resources["pid"].(float64))
		}
	}
	return out
}

// leases is how many tasks run on a provider.
func (r *running) leases(id string) int {
	r.t.Helper()
	for _, p := range r.providers() {
		if p.ID == id {
			return p.Leases
		}
	}
	return -1
}

// config writes a configuration for the service: the loopback Ollama
// server as "llm", this binary as "worker", or, if body is not empty,
// what it says instead of the shutdown, templates and providers.
func config(t *testing.T, addr, dataDir, llmURL, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "gleitzeit.yaml")
	head := fmt.Sprintf("addr: %s\ndata_dir: %s\nhealth_interval: 100ms\n", addr, dataDir)
	if body != "" {
		require.NoError(t, os.WriteFile(p, []byte(head+body), 0o600))
		return p
	}
	argv, env := rpctest.Command(rpctest.Server, false)
	content := head + fmt.Sprintf(`
shutdown:
  timeout: 15s
  drain_delay: 400ms
templates:
  llm:
    kind: ollama
    critical: true
    ollama: {url: %q}
  worker:
    kind: process
    protocol: work/v1
    critical: true
    process:
      command: [%q, %q]
      env: [%q]
      health_method: ping
providers:
  - {id: llm-1, template: llm}
  - {id: worker-1, template: worker}
  - {id: worker-2, template: worker}
`, llmURL, argv[0], argv[1], env[0])
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

// requireStoredOK looks every task up and requires it stored, ok: each
// was answered 200.
func requireStoredOK(t *testing.T, base string, ids []string) {
	t.Helper()
	for _, id := range ids {
		resp, err := http.Get(base + "/v1/tasks/" + id)
		require.NoError(t, err)
		var rec struct{ ID, Status string }
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&rec))
		resp.Body.Close()
		require.Equal(t, 200, resp.StatusCode, "task %s was answered 200 and is not in the store", id)
		assert.Equal(t, "ok", rec.Status, "task %s", id)
	}
}

func post(base string, body string) (int, string, error) {
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Post(base+"/v1/tasks", "application/json", strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var rec struct{ ID string }
	data, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(data, &rec)
	return resp.StatusCode, rec.ID, nil
}

// The service under load gets SIGTERM: readiness answers 503 before the
// listener closes, the requests in flight finish, every provider is
// cleaned up (the log says so), no child is left, it exits 0, and every
// task answered 2xx is in the store when it starts again.
func TestSIGTERMUnderLoad(t *testing.T) {
	llm := ollamatest.Start()
	defer llm.Close()
	llm.SetTokenDelay(2 * time.Millisecond)
	addr, data := freeAddr(t), t.TempDir()
	cfg := config(t, addr, data, llm.URL(), "")
	svc := run(t, cfg)
	svc.waitReady(addr)
	children := svc.pids()
	require.Len(t, children, 2)

	// Readiness, watched until the listener closes: at the latest, once
	// the process has exited, which the test bounds.
	type probe struct {
		code    int
		refused bool
	}
	probes := make(chan []probe, 1)
	go func() {
		var seen []probe
		for {
			resp, err := http.Get(svc.base + "/readyz")
			if err != nil {
				seen = append(seen, probe{refused: true})
				break
			}
			resp.Body.Close()
			seen = append(seen, probe{code: resp.StatusCode})
			time.Sleep(5 * time.Millisecond)
		}
		probes <- seen
	}()

	// Many clients, until the listener closes.
	var (
		mu sync.Mutex
		ok []string
	)
	bodies := []string{
		`{"protocol":"llm/v1","method":"generate","params":{"model":"llama3.2","prompt":"one two three four five"}}`,
		`{"protocol":"work/v1","method":"sleep","params":[20]}`,
		`{"protocol":"work/v1","method":"echo","params":{"x":1}}`,
	}
	var clients sync.WaitGroup
	for c := range 16 {
		clients.Go(func() {
			for i := 0; i < 10000; i++ {
				code, id, err := post(svc.base, bodies[(c+i)%len(bodies)])
				if err != nil {
					return // the listener closed
				}
				if code/100 == 2 {
					mu.Lock()
					ok = append(ok, id)
					mu.Unlock()
				}
			}
		})
	}
	// SIGTERM once the load is on: tasks are being answered.
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(ok) >= 50
	}, time.Minute, 5*time.Millisecond, "the service answered too few tasks:\n%s", svc.stderr)
	require.NoError(t, svc.cmd.Process.Signal(syscall.SIGTERM))
	assert.Equal(t, 0, svc.exitCode(), "exit code; log:\n%s", svc.stderr)
	testkit.Within(t, "the clients", clients.Wait)

	seen := testkit.Receive(t, probes, "the readiness probe")
	saw503 := false
	for _, p := range seen {
		saw503 = saw503 || p.code == 503
	}
	assert.True(t, saw503, "/readyz answered 503 before the listener closed: %v", seen)

	log := svc.stderr.String()
	assert.Contains(t, log, "shutting down: readiness is now 503")
	assert.Contains(t, log, "cleanup report")
	for _, id := range []string{"llm-1", "worker-1", "worker-2", "store", "audit"} {
		assert.Contains(t, log, `"`+id+`":{"method":"Cleanup","result":"ok"`, "the report names %s", id)
	}
	for id, pid := range children {
		assert.ErrorIs(t, syscall.Kill(pid, 0), syscall.ESRCH, "child %s (pid %d) is gone", id, pid)
	}
	require.NotEmpty(t, ok)
	t.Logf("%d tasks answered 2xx", len(ok))

	// Started again on the same data, the store has every task answered 2xx.
	again := run(t, cfg)
	again.waitReady(addr)
	requireStoredOK(t, again.base, ok)
	require.NoError(t, again.cmd.Process.Signal(syscall.SIGINT))
	assert.Equal(t, 0, again.exitCode())
}

// A second signal ends a shutdown stuck on a provider: exit code 1, and the
// log names the provider that had not finished.
func TestSecondSignalForcesExit(t *testing.T) {
	llm := ollamatest.Start()
	defer llm.Close()
	addr := freeAddr(t)
	argv, env := rpctest.Command(rpctest.Server, true)
	cfg := config(t, addr, t.TempDir(), llm.URL(), `
provider_timeout: 60s
shutdown: {timeout: 50s, drain_delay: 0s, cleanup_reserve: 45s}
templates:
  llm: {kind: ollama, ollama: {url: "`+llm.URL()+`"}}
  stubborn:
    kind: process
    protocol: work/v1
    # The handshake proves the child serves, so it ignores SIGTERM already.
    process: {command: ["`+argv[0]+`", "`+argv[1]+`"], env: ["`+env[0]+`", "`+env[1]+`"], grace: 40s, ready_method: ping}
providers:
  - {id: llm-1, template: llm}
  - {id: stubborn-1, template: stubborn}
`)
	svc := run(t, cfg)
	svc.waitReady(addr)
	pid := svc.pids()["stubborn-1"]
	require.NoError(t, syscall.Kill(pid, 0), "the stubborn child runs")
	require.NoError(t, svc.cmd.Process.Signal(syscall.SIGTERM))
	require.Eventually(t, func() bool { return strings.Contains(svc.stderr.String(), "cleaning up providers") },
		testkit.Wait, 10*time.Millisecond)
	require.NoError(t, svc.cmd.Process.Signal(syscall.SIGINT), "log:\n%s", svc.stderr)
	assert.Equal(t, 1, svc.exitCode())
	log := svc.stderr.String()
	assert.Contains(t, log, "second signal: exiting now")
	assert.Contains(t, log, "stubborn-1 (cleaning)")
	// The kernel kills a child whose service died (Pdeathsig), so even a
	// forced exit leaves none behind.
	require.Eventually(t, func() bool { return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) }, testkit.Wait, 10*time.Millisecond)
}

// One task longer than the whole shutdown budget is in flight at SIGTERM.
// The HTTP part of the shutdown gets what is left after the cleanup
// reserve; when that runs out the task is cancelled, answered 503 and
// recorded, and the providers still get their cleanup: a full report,
// children stopped by SIGTERM (not killed), exit 0.
func TestALongTaskCannotCostTheProvidersTheirCleanup(t *testing.T) {
	llm := ollamatest.Start()
	defer llm.Close()
	addr, data := freeAddr(t), t.TempDir()
	argv, env := rpctest.Command(rpctest.Server, false)
	cfg := config(t, addr, data, llm.URL(), fmt.Sprintf(`
task_timeout: 60s
shutdown: {timeout: 4s, drain_delay: 100ms, cleanup_reserve: 2s}
templates:
  llm:
    kind: ollama
    ollama: {url: %q}
  worker:
    kind: process
    protocol: work/v1
    critical: true
    process: {command: [%q, %q], env: [%q], grace: 1s, health_method: ping}
providers:
  - {id: llm-1, template: llm}
  - {id: worker-1, template: worker}
`, llm.URL(), argv[0], argv[1], env[0]))
	svc := run(t, cfg)
	svc.waitReady(addr)
	children := svc.pids()

	type answer struct {
		code int
		body string
		err  error
	}
	long := testkit.Go(func() answer {
		client := &http.Client{Timeout: 30 * time.Second}
		resp, err := client.Post(svc.base+"/v1/tasks", "application/json",
			strings.NewReader(`{"protocol":"work/v1","method":"sleep","params":[30000]}`))
		if err != nil {
			return answer{err: err}
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return answer{code: resp.StatusCode, body: string(b)}
	})
	// The task is recorded and has worker-1's lease: it runs on the child.
	require.Eventually(t, func() bool { return svc.leases("worker-1") == 1 }, testkit.Wait, 5*time.Millisecond)
	require.NoError(t, svc.cmd.Process.Signal(syscall.SIGTERM))
	assert.Equal(t, 0, svc.exitCode(), "exit code; log:\n%s", svc.stderr)

	a := testkit.Receive(t, long, "the long task's answer")
	require.NoError(t, a.err, "the long task got no answer")
	assert.Equal(t, 503, a.code, a.body)
	var answered struct {
		Error string
		Task  struct{ ID, Status string }
	}
	require.NoError(t, json.Unmarshal([]byte(a.body), &answered), a.body)
	rec := answered.Task
	assert.Equal(t, "cancelled", rec.Status)
	assert.Contains(t, answered.Error, "cut short")

	log := svc.stderr.String()
	for _, id := range []string{"llm-1", "worker-1", "store", "audit"} {
		assert.Contains(t, log, `"`+id+`":{"method":"Cleanup","result":"ok"`, "the report names %s", id)
	}
	for id, pid := range children {
		assert.ErrorIs(t, syscall.Kill(pid, 0), syscall.ESRCH, "child %s (pid %d) is gone", id, pid)
	}
	audit, err := os.ReadFile(filepath.Join(data, "audit.jsonl"))
	require.NoError(t, err)
	assert.Contains(t, string(audit), rec.ID, "the cancelled task is in the audit log")
}
