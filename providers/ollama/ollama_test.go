package ollama_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ollama/ollama/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/gleitzeit/gleitzeit/internal/ollamatest"
	"github.com/gleitzeit/gleitzeit/internal/testkit"
	"github.com/gleitzeit/gleitzeit/lifecycle"
	"github.com/gleitzeit/gleitzeit/providers/ollama"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const model = "llama3.2"

func serve(t *testing.T) *ollamatest.Server {
	t.Helper()
	s := ollamatest.Start()
	t.Cleanup(s.Close)
	return s
}

func client(t *testing.T, cfg ollama.Config) *ollama.Provider {
	t.Helper()
	p, err := ollama.New(cfg)
	require.NoError(t, err)
	require.NoError(t, p.Initialize(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testkit.Wait)
		defer cancel()
		_ = p.Cleanup(ctx)
	})
	return p
}

func no() *bool { f := false; return &f }

func TestEveryCall(t *testing.T) {
	s := serve(t)
	p := client(t, ollama.Config{URL: s.URL()})
	ctx := context.Background()

	t.Run("generate, streamed", func(t *testing.T) {
		var text strings.Builder
		var pieces int
		var final api.GenerateResponse
		require.NoError(t, p.Generate(ctx, &api.GenerateRequest{Model: model, Prompt: "why is the sky blue?"},
			func(r api.GenerateResponse) error {
				text.WriteString(r.Response)
				pieces++
				if r.Done {
					final = r
				}
				return nil
			}))
		assert.Equal(t, ollamatest.Reply("why is the sky blue?"), text.String())
		assert.Greater(t, pieces, 2, "several objects were streamed")
		assert.Equal(t, "stop", final.DoneReason)
		assert.Positive(t, final.EvalCount)
	})
	t.Run("generate, not streamed", func(t *testing.T) {
		var got []api.GenerateResponse
		require.NoError(t, p.Generate(ctx, &api.GenerateRequest{Model: model, Prompt: "hi there", Stream: no()},
			func(r api.GenerateResponse) error { got = append(got, r); return nil }))
		require.Len(t, got, 1)
		assert.Equal(t, ollamatest.Reply("hi there"), got[0].Response)
		assert.True(t, got[0].Done)
	})
	t.Run("chat, streamed and not", func(t *testing.T) {
		msgs := []api.Message{{Role: "user", Content: "hello"}}
		var text strings.Builder
		require.NoError(t, p.Chat(ctx, &api.ChatRequest{Model: model, Messages: msgs},
			func(r api.ChatResponse) error { text.WriteString(r.Message.Content); return nil }))
		assert.Equal(t, ollamatest.Reply("hello"), text.String())
		var one []api.ChatResponse
		require.NoError(t, p.Chat(ctx, &api.ChatRequest{Model: model, Messages: msgs, Stream: no()},
			func(r api.ChatResponse) error { one = append(one, r); return nil }))
		require.Len(t, one, 1)
		assert.Equal(t, "assistant", one[0].Message.Role)
		assert.Equal(t, ollamatest.Reply("hello"), one[0].Message.Content)
	})
	t.Run("embed", func(t *testing.T) {
		r, err := p.Embed(ctx, &api.EmbedRequest{Model: model, Input: []string{"a", "b"}})
		require.NoError(t, err)
		require.Len(t, r.Embeddings, 2)
		assert.Len(t, r.Embeddings[0], 8)
		assert.NotEqual(t, r.Embeddings[0], r.Embeddings[1])
		one, err := p.Embed(ctx, &api.EmbedRequest{Model: model, Input: "a"})
		require.NoError(t, err)
		assert.Equal(t, r.Embeddings[0], one.Embeddings[0], "deterministic")
		old, err := p.Embeddings(ctx, &api.EmbeddingRequest{Model: model, Prompt: "a"})
		require.NoError(t, err)
		assert.Len(t, old.Embedding, 8)
	})
	t.Run("list and version", func(t *testing.T) {
		list, err := p.List(ctx)
		require.NoError(t, err)
		require.Len(t, list.Models, 1)
		assert.Equal(t, "llama3.2:latest", list.Models[0].Name)
		v, err := p.Version(ctx)
		require.NoError(t, err)
		assert.Equal(t, ollamatest.Version, v)
	})
	t.Run("unknown model", func(t *testing.T) {
		err := p.Generate(ctx, &api.GenerateRequest{Model: "nope", Prompt: "x"}, func(api.GenerateResponse) error { return nil })
		var se api.StatusError
		require.ErrorAs(t, err, &se)
		assert.Equal(t, 404, se.StatusCode)
		assert.Contains(t, err.Error(), `model "nope:latest" not found`)
	})
}

// Cleanup cancels the requests in flight and closes every connection: the
// server sees none left open.
func TestCleanupCancelsInFlightAndClosesConnections(t *testing.T) {
	s := serve(t)
	s.SetTokenDelay(time.Hour) // a token, then nothing: only Cleanup ends the streams
	p, err := ollama.New(ollama.Config{URL: s.URL()})
	require.NoError(t, err)
	require.NoError(t, p.Initialize(context.Background()))

	var started sync.WaitGroup
	results := make(chan error, 4)
	for range 4 {
		started.Add(1)
		go func() {
			var once sync.Once
			results <- p.Generate(context.Background(), &api.GenerateRequest{Model: model, Prompt: "why is the sky blue?"},
				func(api.GenerateResponse) error { once.Do(started.Done); return nil })
		}()
	}
	testkit.Within(t, "four streams begin", started.Wait)
	require.Equal(t, 4, s.OpenConns())
	assert.EqualValues(t, 4, p.HealthCheck(context.Background()).Resources["calls_in_flight"])

	require.NoError(t, p.Cleanup(context.Background()))
	for range 4 {
		err := testkit.Receive(t, results, "a streaming call")
		require.ErrorIs(t, err, ollama.ErrClosed)
		assert.Contains(t, err.Error(), "cancelled by cleanup")
	}
	require.Eventually(t, func() bool { return s.OpenConns() == 0 }, testkit.Wait, 5*time.Millisecond,
		"the server still sees %d connections", s.OpenConns())

	_, err = p.Version(context.Background())
	require.ErrorIs(t, err, ollama.ErrClosed)
	require.NoError(t, p.Cleanup(context.Background()), "Cleanup is idempotent")
}

// A stream the server ends before its final object is an error, which the
// official client alone would report as success.
func TestStreamCutShortIsAnError(t *testing.T) {
	s := serve(t)
	s.Cut(2)
	p := client(t, ollama.Config{URL: s.URL()})
	var got int
	err := p.Generate(context.Background(), &api.GenerateRequest{Model: model, Prompt: "one two three four"},
		func(api.GenerateResponse) error { got++; return nil })
	require.ErrorIs(t, err, ollama.ErrIncomplete)
	assert.Equal(t, 2, got)
	err = p.Chat(context.Background(), &api.ChatRequest{Model: model, Messages: []api.Message{{Role: "user", Content: "a b c d"}}},
		func(api.ChatResponse) error { return nil })
	require.ErrorIs(t, err, ollama.ErrIncomplete)
}

// openBreaker returns a failing server, a client of it whose breaker its
// three failures have opened for openFor, and a call through the client.
func openBreaker(t *testing.T, openFor time.Duration) (*ollamatest.Server, *ollama.Provider, func() error) {
	t.Helper()
	s := serve(t)
	p := client(t, ollama.Config{URL: s.URL(), BreakerFailures: 3, BreakerOpenFor: openFor})
	gen := func() error {
		return p.Generate(context.Background(), &api.GenerateRequest{Model: model, Prompt: "x"}, func(api.GenerateResponse) error { return nil })
	}
	s.Fail(1000)
	for range 3 {
		var se api.StatusError
		require.ErrorAs(t, gen(), &se)
		assert.Equal(t, 503, se.StatusCode)
	}
	return s, p, gen
}

// A dead server opens the breaker: calls then fail at once, without
// reaching the server. It stays open for an hour, longer than the calls
// below take however slow the machine; TestBreakerClosesAgain lets it
// close.
func TestBreakerFailsFastWhenTheServerFails(t *testing.T) {
	s, p, gen := openBreaker(t, time.Hour)
	ctx := context.Background()
	seen := s.Requests("/api/generate")
	for range 10 {
		require.ErrorIs(t, gen(), ollama.ErrUnavailable)
	}
	assert.Equal(t, seen, s.Requests("/api/generate"), "an open breaker does not call the server")
	h := p.HealthCheck(ctx)
	assert.Equal(t, lifecycle.StatusUnhealthy, h.Status)
	assert.Equal(t, "open", h.Resources["breaker"])
}

// An open breaker lets a call through again once its time is up, and the
// call's success closes it.
func TestBreakerClosesAgain(t *testing.T) {
	s, p, gen := openBreaker(t, 100*time.Millisecond)
	ctx := context.Background()
	// Open, or half-open if its time is up already: only a call that
	// succeeds closes it.
	assert.NotEqual(t, "closed", p.HealthCheck(ctx).Resources["breaker"])

	s.Fail(0)
	require.Eventually(t, func() bool { return gen() == nil }, testkit.Wait, 20*time.Millisecond, "the breaker closes again")
	assert.Equal(t, "closed", p.HealthCheck(ctx).Resources["breaker"])
}

// A caller's mistakes (4xx) and cancellations do not open the breaker.
func TestBreakerIgnoresCallerErrors(t *testing.T) {
	s := serve(t)
	p := client(t, ollama.Config{URL: s.URL(), BreakerFailures: 2})
	for range 5 {
		err := p.Generate(context.Background(), &api.GenerateRequest{Model: "nope"}, func(api.GenerateResponse) error { return nil })
		require.Error(t, err)
		require.NotErrorIs(t, err, ollama.ErrUnavailable)
	}
	s.SetHang(true)
	for range 3 {
		ctx, cancel := context.WithCancel(context.Background())
		asked := s.Requests("/api/embed")
		result := testkit.Go(func() error {
			_, err := p.Embed(ctx, &api.EmbedRequest{Model: model, Input: "x"})
			return err
		})
		// Cancelled while the server holds the request.
		require.Eventually(t, func() bool { return s.Requests("/api/embed") > asked }, testkit.Wait, time.Millisecond)
		cancel()
		require.ErrorIs(t, testkit.Receive(t, result, "the cancelled call"), context.Canceled)
	}
	s.SetHang(false)
	assert.Equal(t, "closed", p.HealthCheck(context.Background()).Resources["breaker"])
}

// Idempotent calls are retried with backoff across a server's hiccup.
func TestIdempotentCallsRetry(t *testing.T) {
	s := serve(t)
	p := client(t, ollama.Config{URL: s.URL(), RetryBackoff: time.Millisecond})
	s.Fail(2)
	v, err := p.Version(context.Background())
	require.NoError(t, err)
	assert.Equal(t, ollamatest.Version, v)
	assert.Equal(t, 3, s.Requests("/api/version"))

	s.Fail(2)
	err = p.Generate(context.Background(), &api.GenerateRequest{Model: model, Prompt: "x"}, func(api.GenerateResponse) error { return nil })
	require.Error(t, err, "generation is not retried: it is not idempotent")
}

func TestUnreachableServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())

	p := client(t, ollama.Config{URL: "http://admin:hunter2@" + addr, RetryBackoff: time.Millisecond})
	_, err = p.Version(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "connection refused")
	assert.Contains(t, err.Error(), addr)
	assert.NotContains(t, err.Error(), "hunter2")
	h := p.HealthCheck(context.Background())
	assert.Equal(t, lifecycle.StatusUnhealthy, h.Status)
	assert.Equal(t, false, h.Resources["reachable"])
	assert.NotContains(t, fmt.Sprint(h), "hunter2")
}

// A server that never answers is bounded by the caller's context.
func TestHungServerIsBoundedByTheContext(t *testing.T) {
	s := serve(t)
	s.SetHang(true)
	p := client(t, ollama.Config{URL: s.URL()})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	var err error
	testkit.Within(t, "Generate", func() {
		err = p.Generate(ctx, &api.GenerateRequest{Model: model, Prompt: "x"}, func(api.GenerateResponse) error { return nil })
	})
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestHealth(t *testing.T) {
	s := serve(t)
	p := client(t, ollama.Config{URL: s.URL(), Protocol: "llm/v1"})
	h := p.HealthCheck(context.Background())
	assert.Equal(t, lifecycle.StatusHealthy, h.Status)
	assert.Equal(t, true, h.Resources["reachable"])
	assert.Equal(t, ollamatest.Version, h.Resources["version"])
	assert.EqualValues(t, 1, h.Resources["open_connections"], "kept alive for the next call")
	assert.Equal(t, "closed", h.Resources["breaker"])
	assert.Equal(t, "llm/v1", h.Resources["protocol"])
}

func TestNewRejectsBadURLs(t *testing.T) {
	tests := []struct {
		give string
		want string
	}{
		{"ftp://user:hunter2@host", "scheme must be http or https"},
		{"http://", "has no host"},
		{"http://user:hunter2@host:port/", "URL"},
		{"localhost:11434", "scheme must be http or https"},
		// A token as the user, and passwords whose unescaped characters
		// the parser quotes in part.
		{"ftp://hunter2@host", "scheme must be http or https"},
		{"http://u:ab?hunter2@x:1", "does not parse: a password must have"},
		{"http://u:hun ter2@x:1", "does not parse: a password must have"},
		{"http://u:hunter2?x@x:1", "does not parse"},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			_, err := ollama.New(ollama.Config{URL: tt.give})
			require.ErrorContains(t, err, tt.want)
			assert.NotContains(t, err.Error(), "hunter2")
			assert.NotContains(t, err.Error(), "hun")
		})
	}
	p, err := ollama.New(ollama.Config{})
	require.NoError(t, err)
	assert.Equal(t, "http://localhost:11434", p.URL())
	_, err = p.Version(context.Background())
	require.True(t, errors.Is(err, ollama.ErrClosed), "before Initialize: %v", err)
}

// Under the registry: Stop with streams in flight, and the server sees
// every connection closed.
func TestUnderTheRegistry(t *testing.T) {
	s := serve(t)
	s.SetTokenDelay(time.Hour) // a token, then nothing: only Stop ends the stream
	p, err := ollama.New(ollama.Config{ID: "llm", URL: s.URL()})
	require.NoError(t, err)
	r := lifecycle.NewRegistry()
	require.NoError(t, r.Register(p))
	require.NoError(t, r.Start(context.Background()))
	streaming := make(chan struct{})
	result := testkit.Go(func() error {
		var once sync.Once
		return p.Generate(context.Background(), &api.GenerateRequest{Model: model, Prompt: "x y z"},
			func(api.GenerateResponse) error { once.Do(func() { close(streaming) }); return nil })
	})
	testkit.Receive(t, streaming, "the stream")
	require.NoError(t, r.Stop(context.Background()))
	require.ErrorIs(t, testkit.Receive(t, result, "Generate"), ollama.ErrClosed)
	require.Eventually(t, func() bool { return s.OpenConns() == 0 }, testkit.Wait, 5*time.Millisecond)
}

// Health checks do not go through the breaker: looking at a failing server
// does not open it, and an open breaker does not hide that the server is
// back (the provider then reads degraded, recovering).
func TestHealthChecksDoNotTouchTheBreaker(t *testing.T) {
	s := serve(t)
	p := client(t, ollama.Config{URL: s.URL(), BreakerFailures: 2, BreakerOpenFor: time.Hour})
	ctx := context.Background()
	s.Fail(1000)
	for range 5 {
		h := p.HealthCheck(ctx)
		require.Equal(t, lifecycle.StatusUnhealthy, h.Status)
		require.Equal(t, "closed", h.Resources["breaker"], "a probe counted as a failure")
		require.EqualValues(t, 0, h.Resources["consecutive_failures"])
	}
	for range 2 { // calls do count
		_ = p.Generate(ctx, &api.GenerateRequest{Model: model, Prompt: "x"}, func(api.GenerateResponse) error { return nil })
	}
	s.Fail(0)
	h := p.HealthCheck(ctx)
	assert.Equal(t, lifecycle.StatusDegraded, h.Status, h.Message)
	assert.Equal(t, true, h.Resources["reachable"])
	assert.Equal(t, "open", h.Resources["breaker"])
}
