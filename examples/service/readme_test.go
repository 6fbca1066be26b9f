package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gleitzeit/gleitzeit/internal/testkit"
)

// curl is one command of the README's walk through the example service,
// and the comment the README gives it.
type curl struct {
	method, path, body string
	says               string
}

// readmeCurls reads the curl commands of the README's section on the
// example service, in order.
func readmeCurls(t *testing.T) []curl {
	t.Helper()
	data, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	text := string(data)
	from := strings.Index(text, "## The example service")
	require.GreaterOrEqual(t, from, 0, "the README has no section on the example service")
	block := regexp.MustCompile("(?s)```sh\n(.*?)```").FindStringSubmatch(text[from:])
	require.NotNil(t, block, "the section has no sh block")
	command := regexp.MustCompile(`^curl (?:-X(\w+) )?localhost:8080(\S+)(?: -d '([^']*)')?\s*(?:#\s*(.*))?$`)
	var out []curl
	for _, line := range strings.Split(strings.TrimSpace(block[1]), "\n") {
		if c := strings.TrimSpace(line); strings.HasPrefix(c, "#") && len(out) > 0 {
			out[len(out)-1].says += " " + strings.TrimSpace(strings.TrimPrefix(c, "#"))
			continue
		}
		m := command.FindStringSubmatch(line)
		require.NotNil(t, m, "a line of the README's block this test cannot read: %q", line)
		method := m[1]
		if method == "" {
			method = "GET"
		}
		out = append(out, curl{method: method, path: m[2], body: m[3], says: m[4]})
	}
	return out
}

// The README's curls, run in order right after the service says it
// started, on its embedded defaults and with no Ollama server, answer what
// the README says; then Ctrl-C stops it as the README says.
func TestTheREADMEsCurlsAnswerWhatTheREADMESays(t *testing.T) {
	addr, noOllama := freeAddr(t), freeAddr(t) // nothing listens on the second
	svc := runArgs(t, []string{"-addr", addr, "-data-dir", t.TempDir(), "-ollama-url", "http://" + noOllama})
	base := "http://" + addr
	deadline := time.Now().Add(testkit.Wait)
	for !strings.Contains(svc.stderr.String(), `"service started"`) {
		select {
		case <-svc.done:
			t.Fatalf("the service exited:\n%s", svc.stderr)
		default:
		}
		require.True(t, time.Now().Before(deadline), "the service did not start:\n%s", svc.stderr)
		time.Sleep(5 * time.Millisecond)
	}

	// What each curl must answer, in the README's order; the README's
	// comment on it must name the status (or body) that matters.
	var taskID string
	want := []struct {
		method, path string
		status       int
		saysStatus   string // what the README's comment says of the answer
		check        func(t *testing.T, body map[string]any)
	}{
		{"GET", "/healthz", 200, `{"status": "alive"}`, func(t *testing.T, body map[string]any) {
			assert.Equal(t, "alive", body["status"])
		}},
		{"GET", "/readyz", 200, "200", func(t *testing.T, body map[string]any) {
			assert.Equal(t, true, body["ready"], "ready without Ollama: its template is not critical")
		}},
		{"GET", "/v1/providers", 200, "health", func(t *testing.T, body map[string]any) {
			health := map[string]string{}
			for _, p := range body["providers"].([]any) {
				p := p.(map[string]any)
				health[p["id"].(string)] = p["health"].(map[string]any)["status"].(string)
			}
			assert.Equal(t, map[string]string{"audit": "healthy", "store": "healthy", "ollama": "unhealthy"}, health)
		}},
		{"POST", "/v1/tasks", 503, "503 naming the reason", func(t *testing.T, body map[string]any) {
			assert.Contains(t, body["error"], "no healthy provider")
			assert.Contains(t, body["error"], "ollama: unreachable")
			task := body["task"].(map[string]any)
			assert.Equal(t, "rejected", task["status"])
			taskID = task["id"].(string)
		}},
		{"GET", "/v1/tasks/<id>", 200, "from the store", func(t *testing.T, body map[string]any) {
			assert.Equal(t, taskID, body["id"])
			assert.Equal(t, "rejected", body["status"])
		}},
		{"GET", "/metrics", 200, "Prometheus", nil},
		{"POST", "/v1/providers", 403, "403", func(t *testing.T, body map[string]any) {
			assert.Contains(t, body["error"], "no admin_token is configured")
		}},
	}
	curls := readmeCurls(t)
	require.Len(t, curls, len(want), "the README's curls changed: %+v", curls)
	for i, w := range want {
		c := curls[i]
		require.Equal(t, w.method+" "+w.path, c.method+" "+c.path, "curl %d", i+1)
		assert.Contains(t, c.says, w.saysStatus, "the README's comment on %s %s", c.method, c.path)
		path := strings.ReplaceAll(c.path, "<id>", taskID)
		req, err := http.NewRequest(c.method, base+path, strings.NewReader(c.body))
		require.NoError(t, err)
		resp, err := (&http.Client{Timeout: testkit.Wait}).Do(req)
		require.NoError(t, err, "%s %s", c.method, path)
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, w.status, resp.StatusCode, "%s %s answered %s", c.method, path, data)
		if w.check == nil {
			assert.Contains(t, string(data), "gleitzeit_provider_health")
			continue
		}
		var body map[string]any
		require.NoError(t, json.Unmarshal(data, &body), "%s %s: %s", c.method, path, data)
		w.check(t, body)
	}

	// Then Ctrl-C: the cleanup report and "service stopped" end the log,
	// and the service exits 0.
	require.NoError(t, svc.cmd.Process.Signal(syscall.SIGINT))
	assert.Equal(t, 0, svc.exitCode(), svc.stderr.String())
	log := svc.stderr.String()
	assert.Contains(t, log, `"shutting down: readiness is now 503"`)
	assert.Contains(t, log, `"cleanup report"`)
	assert.Regexp(t, `"service stopped"[^\n]*\n$`, log, "the last line")
}
