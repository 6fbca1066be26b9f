package ollamatest

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Version is what GET /api/version answers.
const Version = "0.12.6"

// Model is a model the server has.
type Model struct {
	Name       string
	Dimensions int // of its embeddings
}

// Server is the test server. Its zero value is not usable; see Start.
type Server struct {
	srv       *httptest.Server
	quit      chan struct{} // closed by Close: hung handlers return
	closeOnce sync.Once

	models map[string]Model

	mu         sync.Mutex // guards the fields below
	tokenDelay time.Duration
	hang       bool
	failures   int // answer this many next requests with 503
	cut        int // end streams after this many tokens, without the final object; 0: never
	requests   map[string]int
	parents    map[string][]string // the traceparent headers of the requests to each path

	open atomic.Int64 // connections open, as the server sees them
}

// Start starts a server on a loopback port with the given models, or with
// "llama3.2:latest" if none.
func Start(models ...Model) *Server {
	if len(models) == 0 {
		models = []Model{{Name: "llama3.2:latest", Dimensions: 8}}
	}
	s := &Server{quit: make(chan struct{}), models: map[string]Model{}, requests: map[string]int{}, parents: map[string][]string{}}
	for _, m := range models {
		s.models[m.Name] = m
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/generate", s.generate)
	mux.HandleFunc("POST /api/chat", s.chat)
	mux.HandleFunc("POST /api/embed", s.embed)
	mux.HandleFunc("POST /api/embeddings", s.embeddings)
	mux.HandleFunc("GET /api/tags", s.tags)
	mux.HandleFunc("GET /api/version", s.version)
	s.srv = httptest.NewUnstartedServer(s.steer(mux))
	s.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			s.open.Add(1)
		case http.StateClosed, http.StateHijacked:
			s.open.Add(-1)
		}
	}
	s.srv.Start()
	return s
}

// URL is the server's base URL, such as http://127.0.0.1:41234.
func (s *Server) URL() string { return s.srv.URL }

// Close stops the server: hung requests end, and connections close. A
// test may close it to take Ollama down, and its cleanup close it again.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.quit)
		s.srv.Close()
	})
}

// OpenConns is the number of client connections open on the server's side.
func (s *Server) OpenConns() int { return int(s.open.Load()) }

// Requests is the number of requests to path so far.
func (s *Server) Requests(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[path]
}

// Traceparents returns the traceparent header of each request to path so
// far that had one, in order: what a traced client propagated.
func (s *Server) Traceparents(path string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.parents[path])
}

// SetTokenDelay sets the time between streamed tokens.
func (s *Server) SetTokenDelay(d time.Duration) {
	s.mu.Lock()
	s.tokenDelay = d
	s.mu.Unlock()
}

// SetHang makes every request wait, without answering, until the client
// goes away or the server closes.
func (s *Server) SetHang(hang bool) {
	s.mu.Lock()
	s.hang = hang
	s.mu.Unlock()
}

// Cut ends every stream after n tokens, cleanly but without its final
// object, as a server that crashes mid-answer behind a proxy would; 0 stops
// cutting.
func (s *Server) Cut(n int) {
	s.mu.Lock()
	s.cut = n
	s.mu.Unlock()
}

// Fail answers the next n requests with 503 Service Unavailable.
func (s *Server) Fail(n int) {
	s.mu.Lock()
	s.failures = n
	s.mu.Unlock()
}

// steer counts each request, then hangs or fails it if told to.
func (s *Server) steer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests[r.URL.Path]++
		if tp := r.Header.Get("traceparent"); tp != "" {
			s.parents[r.URL.Path] = append(s.parents[r.URL.Path], tp)
		}
		hang, fail := s.hang, s.failures > 0
		if fail {
			s.failures--
		}
		s.mu.Unlock()
		switch {
		case hang:
			select {
			case <-r.Context().Done():
			case <-s.quit:
			}
		case fail:
			writeError(w, http.StatusServiceUnavailable, "server busy")
		default:
			next.ServeHTTP(w, r)
		}
	})
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// decode reads the request body into v, answering 400 if it cannot.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "invalid request body: "+err.Error())
		return false
	}
	return true
}

// model finds the named model, taking a missing tag as ":latest", or
// answers 404 as Ollama does.
func (s *Server) model(w http.ResponseWriter, name string) (Model, bool) {
	if name == "" {
		writeError(w, http.StatusBadRequest, "model is required")
		return Model{}, false
	}
	if !strings.Contains(name, ":") {
		name += ":latest"
	}
	m, ok := s.models[name]
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("model %q not found, try pulling it first", name))
	}
	return m, ok
}

type generateRequest struct {
	Model  string `json:"model"`
	Prompt string `json:"prompt"`
	Stream *bool  `json:"stream"`
}

type message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type chatRequest struct {
	Model    string    `json:"model"`
	Messages []message `json:"messages"`
	Stream   *bool     `json:"stream"`
}

// Reply is what the server answers to a prompt: deterministic, so tests
// can check what the client assembled from the stream.
func Reply(prompt string) string { return "You said: " + prompt }

func tokens(text string) []string {
	words := strings.SplitAfter(text, " ")
	return words
}

func (s *Server) generate(w http.ResponseWriter, r *http.Request) {
	var req generateRequest
	if !decode(w, r, &req) {
		return
	}
	m, ok := s.model(w, req.Model)
	if !ok {
		return
	}
	s.respond(w, r, req.Stream, Reply(req.Prompt), func(piece string, done bool) map[string]any {
		return map[string]any{"model": m.Name, "created_at": time.Now().UTC(), "response": piece, "done": done}
	})
}

func (s *Server) chat(w http.ResponseWriter, r *http.Request) {
	var req chatRequest
	if !decode(w, r, &req) {
		return
	}
	m, ok := s.model(w, req.Model)
	if !ok {
		return
	}
	if len(req.Messages) == 0 {
		writeError(w, http.StatusBadRequest, "messages are required")
		return
	}
	last := req.Messages[len(req.Messages)-1].Content
	s.respond(w, r, req.Stream, Reply(last), func(piece string, done bool) map[string]any {
		return map[string]any{"model": m.Name, "created_at": time.Now().UTC(),
			"message": message{Role: "assistant", Content: piece}, "done": done}
	})
}

// respond answers a generate or chat request: a stream of objects, one per
// token, then a final one with "done": true and the statistics; or, with
// "stream": false, the whole text in one object.
func (s *Server) respond(w http.ResponseWriter, r *http.Request, stream *bool, text string, object func(string, bool) map[string]any) {
	start := time.Now()
	pieces := tokens(text)
	final := func(piece string) map[string]any {
		o := object(piece, true)
		o["done_reason"] = "stop"
		o["total_duration"] = time.Since(start).Nanoseconds()
		o["load_duration"] = 1000
		o["prompt_eval_count"] = 1
		o["prompt_eval_duration"] = 1000
		o["eval_count"] = len(pieces)
		o["eval_duration"] = time.Since(start).Nanoseconds()
		return o
	}
	if stream != nil && !*stream {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(final(text))
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	s.mu.Lock()
	delay, cut := s.tokenDelay, s.cut
	s.mu.Unlock()
	for i, p := range pieces {
		if cut > 0 && i == cut {
			return
		}
		if err := enc.Encode(object(p, false)); err != nil {
			return // the client went away
		}
		if flusher != nil {
			flusher.Flush()
		}
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			case <-s.quit:
				return
			}
		}
	}
	_ = enc.Encode(final(""))
}

// vector is a deterministic embedding of text.
func vector(text string, dims int) []float32 {
	out := make([]float32, dims)
	for i := range out {
		h := fnv.New32a()
		fmt.Fprintf(h, "%d:%s", i, text)
		out[i] = float32(h.Sum32()%2000)/1000 - 1
	}
	return out
}

func (s *Server) embed(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model string `json:"model"`
		Input any    `json:"input"`
	}
	if !decode(w, r, &req) {
		return
	}
	m, ok := s.model(w, req.Model)
	if !ok {
		return
	}
	var inputs []string
	switch in := req.Input.(type) {
	case string:
		inputs = []string{in}
	case []any:
		for _, v := range in {
			str, ok := v.(string)
			if !ok {
				writeError(w, http.StatusBadRequest, "input must be a string or a list of strings")
				return
			}
			inputs = append(inputs, str)
		}
	default:
		writeError(w, http.StatusBadRequest, "input must be a string or a list of strings")
		return
	}
	embeddings := make([][]float32, len(inputs))
	for i, in := range inputs {
		embeddings[i] = vector(in, m.Dimensions)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"model": m.Name, "embeddings": embeddings, "total_duration": 1000, "load_duration": 10, "prompt_eval_count": len(inputs),
	})
}

func (s *Server) embeddings(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model  string `json:"model"`
		Prompt string `json:"prompt"`
	}
	if !decode(w, r, &req) {
		return
	}
	m, ok := s.model(w, req.Model)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"embedding": vector(req.Prompt, m.Dimensions)})
}

func (s *Server) tags(w http.ResponseWriter, _ *http.Request) {
	var models []map[string]any
	for _, m := range s.models {
		h := fnv.New64a()
		h.Write([]byte(m.Name))
		models = append(models, map[string]any{
			"name": m.Name, "model": m.Name, "modified_at": time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
			"size": 2019393189, "digest": fmt.Sprintf("%016x", h.Sum64()),
			"details": map[string]any{"format": "gguf", "family": "llama", "families": []string{"llama"},
				"parameter_size": "3.2B", "quantization_level": "Q4_K_M"},
		})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"models": models})
}

func (s *Server) version(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"version": Version})
}
