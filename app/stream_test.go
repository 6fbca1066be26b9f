package app

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gleitzeit/gleitzeit/app/taskstore"
	"github.com/gleitzeit/gleitzeit/internal/testkit"
)

// sse is one Server-Sent Event as a client reads it, and when.
type sse struct {
	event, data, id string
	at              time.Time
}

// streamTask posts a task asking for Server-Sent Events and returns the
// answer's status and the events as they come; the channel closes at the
// stream's end. cancel ends the request, as a client that goes away.
func (s *service) streamTask(body map[string]any) (code int, events <-chan sse, cancel func()) {
	s.t.Helper()
	b, err := json.Marshal(body)
	require.NoError(s.t, err)
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Wait)
	req, err := http.NewRequestWithContext(ctx, "POST", s.base+"/v1/tasks", bytes.NewReader(b))
	require.NoError(s.t, err)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	out := make(chan sse, 1024)
	go func() {
		defer close(out)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		var e sse
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if e != (sse{}) {
					e.at = time.Now()
					out <- e
				}
				e = sse{}
			case strings.HasPrefix(line, "event: "):
				e.event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				e.data = strings.TrimPrefix(line, "data: ")
			case strings.HasPrefix(line, "id: "):
				e.id = strings.TrimPrefix(line, "id: ")
			}
		}
	}()
	return resp.StatusCode, out, cancel
}

// collect reads a stream to its end: the task's id, its progress events,
// and its result.
func collect(t *testing.T, events <-chan sse) (id string, progress []sse, result sse) {
	t.Helper()
	for e := range events {
		switch {
		case e.id != "":
			id = e.id
		case e.event == "progress":
			progress = append(progress, e)
		case e.event == "result":
			require.Empty(t, result.event, "one result")
			result = e
		}
	}
	require.Equal(t, "result", result.event, "the stream ends with its result")
	return id, progress, result
}

// firstProgress reads a stream up to its first progress event: the task's
// id, and that event.
func firstProgress(t *testing.T, events <-chan sse) (id string, first sse) {
	t.Helper()
	for e := range events {
		switch {
		case e.id != "":
			id = e.id
		case e.event == "progress":
			return id, e
		case e.event == "result":
			t.Fatalf("the result came before any progress: %s", e.data)
		}
	}
	t.Fatal("the stream ended without progress")
	return "", sse{}
}

// An Ollama answer streamed chunk by chunk, from a server that streams as
// Ollama does (NDJSON): each chunk an event as it comes, then one result
// that is what an unstreamed task answers, with the whole text, recorded
// as any task is. A chunk comes while the answer is still coming: with the
// server holding the rest back, the first one arrives, and the task runs.
func TestAnOllamaAnswerStreamsChunkByChunk(t *testing.T) {
	s := start(t, "")
	s.waitHealthy()
	generate := map[string]any{"protocol": "llm/v1", "method": "generate",
		"params": map[string]any{"model": "llama3.2", "prompt": "hi", "stream": true}}

	s.llm.SetTokenDelay(time.Hour) // a token, then nothing until the task ends
	code, events, cancel := s.streamTask(generate)
	defer cancel()
	require.Equal(t, 200, code)
	id, first := firstProgress(t, events)
	var running taskstore.Record
	require.Equal(t, 200, s.call("GET", "/v1/tasks/"+id, "", nil, &running))
	assert.Equal(t, "running", running.Status, "the first chunk came before the answer ended")
	assert.Contains(t, first.data, `"response"`)
	require.Equal(t, 202, s.call("DELETE", "/v1/tasks/"+id, "", nil, nil))
	_, _, ended := collect(t, events)
	assert.Contains(t, ended.data, `"status":"cancelled"`)

	s.llm.SetTokenDelay(0)
	code, events, cancel2 := s.streamTask(generate)
	defer cancel2()
	require.Equal(t, 200, code)
	id, progress, result := collect(t, events)
	require.GreaterOrEqual(t, len(progress), 3, "a chunk per token and the final one")
	var text strings.Builder
	for _, p := range progress {
		var chunk struct{ Response string }
		require.NoError(t, json.Unmarshal([]byte(p.data), &chunk))
		text.WriteString(chunk.Response)
	}
	var rec taskstore.Record
	require.NoError(t, json.Unmarshal([]byte(result.data), &rec))
	assert.Equal(t, id, rec.ID)
	assert.Equal(t, "ok", rec.Status)
	var out struct {
		Response string
		Done     bool
	}
	require.NoError(t, json.Unmarshal(rec.Output, &out))
	assert.True(t, out.Done)
	assert.Equal(t, text.String(), out.Response, "the result's text is the chunks'")
	assert.NotEmpty(t, out.Response)
	var stored taskstore.Record
	require.Equal(t, 200, s.call("GET", "/v1/tasks/"+id, "", nil, &stored))
	assert.Equal(t, "ok", stored.Status)

	// Asked for without the header, stream: true says how to ask.
	code, _, msg := s.task("llm/v1", "chat", map[string]any{"model": "llama3.2", "stream": true})
	assert.Equal(t, 400, code)
	assert.Contains(t, msg, "send the header Accept: text/event-stream")
	// A task refused before it is recorded is answered as any other.
	code, events, cancel3 := s.streamTask(map[string]any{"protocol": "llm/v1"})
	defer cancel3()
	assert.Equal(t, 400, code)
	for range events {
	}
}

// MCP progress streamed from the reference server's long-running tool:
// each notifications/progress of the call an event as it comes, then the
// tool's result. A progress event comes while the call runs: the first of
// a minute-long call arrives, and the task runs.
func TestMCPProgressStreams(t *testing.T) {
	s := startEverythingPool(t, "{min: 1, max: 1, per_instance: 4}")
	code, events, cancel := s.streamTask(longOperation(60))
	defer cancel()
	require.Equal(t, 200, code)
	id, _ := firstProgress(t, events)
	var running taskstore.Record
	require.Equal(t, 200, s.call("GET", "/v1/tasks/"+id, "", nil, &running))
	assert.Equal(t, "running", running.Status, "the first progress came while the call ran")
	require.Equal(t, 202, s.call("DELETE", "/v1/tasks/"+id, "", nil, nil))
	_, _, ended := collect(t, events)
	assert.Contains(t, ended.data, `"status":"cancelled"`)

	const steps = 5
	code, events, cancel2 := s.streamTask(map[string]any{"protocol": "mcp/v1", "method": "tools/call",
		"params": map[string]any{"name": "trigger-long-running-operation", "arguments": map[string]any{"duration": 0.5, "steps": steps}}})
	defer cancel2()
	require.Equal(t, 200, code)
	id, progress, result := collect(t, events)
	// Every step, in order; the MCP SDK handles notifications apart from
	// answers, so the last, which came just before the answer, may be
	// handled after it and not sent.
	require.GreaterOrEqual(t, len(progress), steps-1, "the steps before the last, at least")
	require.LessOrEqual(t, len(progress), steps)
	for i, p := range progress {
		var n struct{ Progress, Total float64 }
		require.NoError(t, json.Unmarshal([]byte(p.data), &n))
		assert.Equal(t, float64(i+1), n.Progress)
		assert.Equal(t, float64(steps), n.Total)
	}
	var rec taskstore.Record
	require.NoError(t, json.Unmarshal([]byte(result.data), &rec))
	assert.Equal(t, id, rec.ID)
	assert.Equal(t, "ok", rec.Status)
	assert.Contains(t, string(rec.Output), "Long running operation completed")
}

// A client that goes away from a stream cancels its task, which is
// recorded cancelled; the instance goes on serving.
func TestAStreamsClientThatGoesAwayCancelsTheTask(t *testing.T) {
	s := startEverythingPool(t, "{min: 1, max: 1, per_instance: 4}")
	_, events, cancel := s.streamTask(longOperation(30))
	var id string
	for e := range events {
		if e.id != "" {
			id = e.id
		}
		if e.event == "progress" {
			break
		}
	}
	require.NotEmpty(t, id)
	cancel()
	var rec taskstore.Record
	require.Eventually(t, func() bool {
		return s.call("GET", "/v1/tasks/"+id, "", nil, &rec) == 200 && rec.Status != "running"
	}, testkit.Wait, 10*time.Millisecond)
	assert.Equal(t, "cancelled", rec.Status)
	assert.Equal(t, errClientGone.Error(), rec.Error)
	code, _, msg := s.task("mcp/v1", "tools/call", map[string]any{"name": "echo", "arguments": map[string]any{"message": "still here"}})
	assert.Equal(t, 200, code, msg)
}

// A client that stops reading a stream holds neither its task past the
// task's deadline nor the provider: pieces are queued for it, never
// waited for, and its task ends as any other, however long the client
// keeps the connection.
func TestAStreamsClientThatStopsReadingHoldsNothing(t *testing.T) {
	s := start(t, "")
	s.waitHealthy()
	b, err := json.Marshal(map[string]any{"protocol": "llm/v1", "method": "generate", "timeout": "1s",
		"params": map[string]any{"model": "llama3.2", "prompt": strings.Repeat("w ", 300000), "stream": true}})
	require.NoError(t, err)
	c, err := net.Dial("tcp", strings.TrimPrefix(s.base, "http://"))
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.(*net.TCPConn).SetReadBuffer(4096))
	_, err = fmt.Fprintf(c, "POST /v1/tasks HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(b), b)
	require.NoError(t, err)
	// The answer's head, with the task's id, and nothing after it: the
	// client reads no event.
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	require.Equal(t, 200, resp.StatusCode)
	id := resp.Header.Get(taskIDHeader)
	require.NotEmpty(t, id)
	var rec taskstore.Record
	require.Eventually(t, func() bool {
		return s.call("GET", "/v1/tasks/"+id, "", nil, &rec) == 200 && rec.Status != "running"
	}, testkit.Wait, 10*time.Millisecond, "the task still runs while its client does not read")
	assert.Contains(t, []string{"cancelled", "timeout"}, rec.Status, rec.Error)
	assert.Zero(t, s.engine.running.Load())
	code, _, msg := s.task("llm/v1", "version", nil)
	assert.Equal(t, 200, code, msg)
}

// Accept is read with its qualities: text/event-stream at q=0 is not
// acceptable, and a client that prefers JSON gets JSON.
func TestWantsStreamReadsQualities(t *testing.T) {
	for accept, want := range map[string]bool{
		"text/event-stream":                         true,
		"TEXT/EVENT-STREAM; charset=utf-8":          true,
		"application/json, text/event-stream":       true,
		"text/event-stream;q=0":                     false,
		"application/json, text/event-stream;q=0.1": false,
		"application/json;q=0.5, text/event-stream": true,
		"*/*":    false,
		"text/*": false,
		"":       false,
	} {
		r, err := http.NewRequest("POST", "/v1/tasks", nil)
		require.NoError(t, err)
		if accept != "" {
			r.Header.Set("Accept", accept)
		}
		assert.Equal(t, want, wantsStream(r), "%q", accept)
	}
}
