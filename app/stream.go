package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"
)

// progressKey is the context key of the function a task's pieces go to as
// they come, for a task answered as a stream.
type progressKey struct{}

// withProgress returns ctx with fn, to which a handler gives each piece of
// its answer as it comes: an Ollama chunk, an MCP progress notification.
func withProgress(ctx context.Context, fn func(piece json.RawMessage)) context.Context {
	return context.WithValue(ctx, progressKey{}, fn)
}

// progressOf is the function ctx carries for a task's pieces; nil for a
// task answered in one piece.
func progressOf(ctx context.Context) func(json.RawMessage) {
	fn, _ := ctx.Value(progressKey{}).(func(json.RawMessage))
	return fn
}

// wantsStream reports whether a request asks for its answer as
// Server-Sent Events.
func wantsStream(r *http.Request) bool {
	for _, line := range r.Header.Values("Accept") {
		for item := range strings.SplitSeq(line, ",") {
			if mt, _, err := mime.ParseMediaType(strings.TrimSpace(item)); err == nil && mt == "text/event-stream" {
				return true
			}
		}
	}
	return false
}

// eventStream answers a task as Server-Sent Events: an "event: progress"
// for each piece as it comes, then one "event: result" whose data is the
// JSON a task answered in one piece gets. It begins once the task is
// recorded (its id is the stream's first line's); a task refused before
// that is answered as any other, with its status.
type eventStream struct {
	w    http.ResponseWriter
	rc   *http.ResponseController
	gone func() // cancels the task: its client does not read

	mu     sync.Mutex // guards begun, ended and writes to w
	begun  bool
	ended  bool
	failed bool // a write failed: the client went away
}

// streamWriteTimeout bounds each event's write: a client that does not
// take one within it has stopped reading, and is gone. Without it, a
// client that stops reading would hold its task, and the instance's slot,
// until the service stopped.
const streamWriteTimeout = 10 * time.Second

// newEventStream returns a stream that writes to w and calls gone once a
// write fails, its client gone or not reading.
func newEventStream(w http.ResponseWriter, gone func()) *eventStream {
	return &eventStream{w: w, rc: http.NewResponseController(w), gone: gone}
}

// begin sends the stream's headers, and the task's id as an SSE id.
func (s *eventStream) begin(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.begun || s.ended {
		return
	}
	s.begun = true
	h := s.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // a proxy that buffers would hold every piece to the end
	s.w.WriteHeader(http.StatusOK)
	s.write("id: " + id + "\n\n")
}

// progress sends one piece. Pieces that come once the result was sent are
// dropped: the handler has returned.
func (s *eventStream) progress(piece json.RawMessage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.begun || s.ended {
		return
	}
	s.write("event: progress\ndata: " + oneLine(piece) + "\n\n")
}

// result ends the stream with the answer; it reports false if the stream
// had not begun, and the answer is the caller's to write as any other.
func (s *eventStream) result(body any) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ended = true
	if !s.begun {
		return false
	}
	data, err := json.Marshal(body)
	if err != nil {
		data = []byte(fmt.Sprintf(`{"error": %q}`, err.Error()))
	}
	s.write("event: result\ndata: " + string(data) + "\n\n")
	// The connection may serve the client's next request, which the server
	// does not bound (no WriteTimeout): it must not inherit this one's.
	_ = s.rc.SetWriteDeadline(time.Time{})
	return true
}

// write sends text and flushes it. s.mu is held.
func (s *eventStream) write(text string) {
	if s.failed {
		return
	}
	_ = s.rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	_, err := s.w.Write([]byte(text))
	if err == nil {
		err = s.rc.Flush()
	}
	if err != nil {
		s.failed = true
		s.gone()
	}
}

// oneLine is a JSON piece as one line: an SSE data line ends at a newline,
// and compact JSON has none.
func oneLine(piece json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Compact(&b, piece); err != nil {
		return strings.ReplaceAll(string(piece), "\n", " ")
	}
	return b.String()
}
