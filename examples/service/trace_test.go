package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gleitzeit/gleitzeit/internal/ollamatest"
	"github.com/gleitzeit/gleitzeit/internal/testkit"
)

// exportedSpan is a span as OTEL_TRACES_EXPORTER=console writes it.
type exportedSpan struct {
	Name        string
	SpanContext struct{ TraceID, SpanID string }
	Parent      struct{ TraceID, SpanID string }
	Attributes  []struct {
		Key   string
		Value struct{ Value any }
	}
	Links []struct {
		SpanContext struct{ SpanID string }
	}
	Resource []struct {
		Key   string
		Value struct{ Value any }
	}
}

func (s exportedSpan) attr(key string) any {
	for _, a := range s.Attributes {
		if a.Key == key {
			return a.Value.Value
		}
	}
	return nil
}

// spansOf decodes the console exporter's output: one JSON object after
// another.
func spansOf(t *testing.T, out []byte) []exportedSpan {
	t.Helper()
	var spans []exportedSpan
	d := json.NewDecoder(bytes.NewReader(out))
	for {
		var s exportedSpan
		err := d.Decode(&s)
		if errors.Is(err, io.EOF) {
			return spans
		}
		require.NoError(t, err, "the console exporter's output:\n%s", out)
		spans = append(spans, s)
	}
}

// The service run with OTEL_TRACES_EXPORTER=console traces a task under
// the caller's trace, carries the trace to Ollama and to a JSON-RPC child,
// and traces its stop: a gleitzeit.stop span with a cleanup child per
// provider. -timeline writes the picture of that stop.
func TestTheServiceTracesATaskAndItsOwnStop(t *testing.T) {
	llm := ollamatest.Start()
	defer llm.Close()
	addr := freeAddr(t)
	svg := filepath.Join(t.TempDir(), "stop.svg")
	bin := config(t, addr, t.TempDir(), llm.URL(), "")
	r := runArgs(t, []string{"-config", bin, "-timeline", svg}, "OTEL_TRACES_EXPORTER=console", "OTEL_SERVICE_NAME=")
	r.waitReady(addr)
	var ids []string
	for _, p := range r.providers() {
		ids = append(ids, p.ID)
	}

	const (
		traceID  = "4bf92f3577b34da6a3ce929d0e0e4736"
		callerID = "00f067aa0ba902b7"
	)
	send := func(body string) string {
		req, err := http.NewRequest("POST", r.base+"/v1/tasks", strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("traceparent", "00-"+traceID+"-"+callerID+"-01")
		resp, err := (&http.Client{Timeout: testkit.Wait}).Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		require.Equal(t, 200, resp.StatusCode, "%s", out)
		return string(out)
	}
	send(`{"protocol":"llm/v1","method":"chat","params":{"model":"llama3.2","messages":[{"role":"user","content":"hi"}],"stream":false}}`)
	echoed := send(`{"protocol":"work/v1","method":"echo","params":{"x":1}}`)
	// A refused task's text, a client's own, stays out of the spans.
	long := strings.Repeat("p", 5000)
	code, _, err := post(r.base, `{"protocol":"`+long+`","method":"`+long+`"}`)
	require.NoError(t, err)
	require.Equal(t, 400, code)

	// Ollama and the child were told the caller's trace.
	parents := llm.Traceparents("/api/chat")
	require.Len(t, parents, 1)
	assert.Contains(t, parents[0], traceID)
	assert.Contains(t, echoed, `"traceparent": "00-`+traceID, "the child got it in params._meta")

	require.NoError(t, r.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, r.exitCode(), "%s", r.stderr)
	spans := spansOf(t, []byte(r.stdout.String()))

	// Each task: the request's span under the caller's, the task's under
	// it, the provider's call under that, all in the caller's trace.
	byID := map[string]exportedSpan{}
	for _, s := range spans {
		byID[s.SpanContext.SpanID] = s
	}
	var tasks, refused []exportedSpan
	for _, s := range spans {
		switch {
		case s.Name != "task":
		case s.attr("gleitzeit.task.id") == nil:
			refused = append(refused, s)
		default:
			tasks = append(tasks, s)
		}
	}
	require.Len(t, tasks, 2)
	require.Len(t, refused, 1)
	assert.Nil(t, refused[0].attr("gleitzeit.task.protocol"), "a refused task's protocol is the client's text")
	for _, s := range spans {
		for _, a := range s.Attributes {
			if v, ok := a.Value.Value.(string); ok {
				assert.LessOrEqual(t, len(v), 1024, "%s's %s", s.Name, a.Key)
			}
		}
	}
	for _, task := range tasks {
		assert.Equal(t, traceID, task.SpanContext.TraceID)
		server := byID[task.Parent.SpanID]
		assert.Equal(t, "POST /v1/tasks", server.Name)
		assert.Equal(t, callerID, server.Parent.SpanID, "the request's span is a child of the caller's")
		assert.Equal(t, "ok", task.attr("gleitzeit.task.status"))
		assert.NotEmpty(t, task.attr("gleitzeit.provider.id"))
		assert.NotEmpty(t, task.attr("gleitzeit.task.id"))
	}
	var llmTask exportedSpan
	for _, task := range tasks {
		if task.attr("gleitzeit.task.protocol") == "llm/v1" {
			llmTask = task
		}
	}
	assert.Equal(t, "chat", llmTask.attr("gleitzeit.task.method"))
	var call, httpCall exportedSpan
	for _, s := range spans {
		if s.Name == "call" && s.Parent.SpanID == llmTask.SpanContext.SpanID {
			call = s
		}
	}
	for _, s := range spans {
		if s.Parent.SpanID == call.SpanContext.SpanID && call.SpanContext.SpanID != "" {
			httpCall = s
		}
	}
	require.NotEmpty(t, httpCall.SpanContext.SpanID, "the HTTP request to Ollama is a span under the call")
	assert.Contains(t, parents[0], httpCall.SpanContext.SpanID, "and is the parent Ollama was told")

	// The stop: one cleanup child per provider.
	var stop exportedSpan
	cleaned := map[string]int{}
	for _, s := range spans {
		if s.Name == "gleitzeit.stop" {
			stop = s
		}
	}
	require.NotEmpty(t, stop.SpanContext.SpanID, "a gleitzeit.stop span")
	for _, s := range spans {
		if s.Name == "cleanup" && s.Parent.SpanID == stop.SpanContext.SpanID {
			cleaned[s.attr("gleitzeit.provider.id").(string)]++
			assert.Equal(t, "ok", s.attr("gleitzeit.result"))
		}
	}
	want := map[string]int{}
	for _, id := range ids {
		want[id] = 1
	}
	assert.Equal(t, want, cleaned)
	names := map[string]int{}
	for _, s := range spans {
		names[s.Name]++
	}
	assert.Equal(t, 1, names["gleitzeit.start"])
	for _, kv := range stop.Resource {
		if kv.Key == "service.name" {
			assert.Equal(t, "gleitzeit", kv.Value.Value, "OTEL_SERVICE_NAME unset")
			names["service.name"]++
		}
	}
	assert.Equal(t, 1, names["service.name"])
	assert.Equal(t, 1, names["GET /v1/providers"], "a request is traced")
	assert.Zero(t, names["GET /readyz"], "a probe is not: waitReady polled it")

	// The picture of that stop, written as the service exited.
	pic, err := os.ReadFile(svg)
	require.NoError(t, err, "%s", r.stderr)
	for _, id := range ids {
		assert.Contains(t, string(pic), `data-provider="`+id+`" data-result="ok"`)
	}
	assert.NotContains(t, string(pic), "Stop: none yet")
}
