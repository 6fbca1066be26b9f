package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strconv"
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
// Server-Sent Events: its Accept names text/event-stream with a quality
// above 0, and no lower than application/json's, if it names that too.
func wantsStream(r *http.Request) bool {
	stream, json := -1.0, -1.0
	for _, line := range r.Header.Values("Accept") {
		for item := range strings.SplitSeq(line, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(item))
			if err != nil {
				continue
			}
			q := 1.0
			if v, ok := params["q"]; ok {
				if q, err = strconv.ParseFloat(v, 64); err != nil {
					continue
				}
			}
			switch mt {
			case "text/event-stream":
				stream = max(stream, q)
			case "application/json":
				json = max(json, q)
			}
		}
	}
	return stream > 0 && stream >= json
}

// eventStream answers a task as Server-Sent Events: an "event: progress"
// for each piece as it comes, then one "event: result" whose data is the
// JSON a task answered in one piece gets. It begins once the task is
// recorded (its id is the stream's first event); a task refused before
// that is answered as any other, with its status.
//
// The events are written by a goroutine of the stream's own, from a
// bounded queue: whoever hands a piece over (an Ollama stream being read,
// an MCP call's progress) never waits for the client. A client that falls
// a whole queue behind, or takes longer than streamWriteTimeout to take one
// event, has stopped reading: its task is cancelled, as if it had gone.
type eventStream struct {
	w    http.ResponseWriter
	rc   *http.ResponseController
	gone func() // cancels the task: its client does not read

	mu     sync.Mutex  // guards begun and ended, and sends on events
	begun  bool        // events is open and the writer runs
	ended  bool        // the result is queued, or the stream never began
	events chan string // to the writer, which closes written at its end
	done   chan struct{}
}

// streamWriteTimeout bounds each event's write: a client that does not
// take one within it has stopped reading, and is gone.
const streamWriteTimeout = 10 * time.Second

// streamQueue bounds the events that wait for a slow client.
const streamQueue = 256

// newEventStream returns a stream that writes to w and calls gone once its
// client is gone or does not keep up.
func newEventStream(w http.ResponseWriter, gone func()) *eventStream {
	return &eventStream{w: w, rc: http.NewResponseController(w), gone: gone}
}

// begin sends the stream's headers and the task's id as an SSE id, and
// starts the writer.
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
	s.events = make(chan string, streamQueue)
	s.done = make(chan struct{})
	s.events <- "id: " + id + "\n\n"
	go s.writer()
}

// progress queues one piece. Pieces that come once the result is queued
// are dropped: the handler is returning.
func (s *eventStream) progress(piece json.RawMessage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.begun || s.ended {
		return
	}
	select {
	case s.events <- "event: progress\ndata: " + oneLine(piece) + "\n\n":
	default:
		s.gone() // a whole queue behind: it has stopped reading
	}
}

// result ends the stream with the answer, and waits for the writer to
// finish (each write bounded by streamWriteTimeout); it reports false if
// the stream had not begun, and the answer is the caller's to write as any
// other.
func (s *eventStream) result(body any) bool {
	s.mu.Lock()
	s.ended = true
	if !s.begun {
		s.mu.Unlock()
		return false
	}
	data, err := json.Marshal(body)
	if err != nil {
		data = []byte(fmt.Sprintf(`{"error": %q}`, err.Error()))
	}
	select {
	case s.events <- "event: result\ndata: " + string(data) + "\n\n":
	default: // a whole queue behind: its client is gone
	}
	close(s.events)
	s.mu.Unlock()
	<-s.done
	return true
}

// writer writes the queued events, each flushed and bounded, until the
// queue closes; past a failed write it writes nothing more.
func (s *eventStream) writer() {
	defer close(s.done)
	failed := false
	for text := range s.events {
		if failed {
			continue
		}
		_ = s.rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		_, err := s.w.Write([]byte(text))
		if err == nil {
			err = s.rc.Flush()
		}
		if err != nil {
			failed = true
			s.gone()
		}
	}
	if !failed {
		// The connection may serve the client's next request, which the
		// server does not bound (no WriteTimeout): it must not inherit
		// this one's.
		_ = s.rc.SetWriteDeadline(time.Time{})
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
