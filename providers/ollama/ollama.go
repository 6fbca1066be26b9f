package ollama

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/ollama/ollama/api"
	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// Defaults, chosen for a server on the same network.
const (
	// DefaultURL is where Ollama listens when installed locally.
	DefaultURL = "http://localhost:11434"
	// DefaultProtocol is what the provider serves.
	DefaultProtocol = "llm/v1"
	// DefaultDialTimeout fails a connection to a host that is down fast.
	DefaultDialTimeout = 5 * time.Second
	// DefaultResponseHeaderTimeout allows for loading a model before the
	// first token; the caller's context bounds the rest.
	DefaultResponseHeaderTimeout = 2 * time.Minute
	// DefaultMaxConnsPerHost bounds the connections to the server: Ollama
	// serves a few requests at a time (OLLAMA_NUM_PARALLEL) and queues the
	// rest, so more connections only queue there.
	DefaultMaxConnsPerHost = 16
	// DefaultAttempts and DefaultRetryBackoff govern retries of idempotent
	// calls: a restart of the server is bridged, a dead one is not waited
	// for.
	DefaultAttempts     = 3
	DefaultRetryBackoff = 100 * time.Millisecond
	// DefaultBreakerFailures consecutive failures open the breaker for
	// DefaultBreakerOpenFor.
	DefaultBreakerFailures = 5
	DefaultBreakerOpenFor  = 10 * time.Second
)

var (
	// ErrClosed: the provider is not initialized, or was cleaned up.
	// Requests in flight when Cleanup begins fail with it.
	ErrClosed = errors.New("ollama client is closed")
	// ErrUnavailable: the circuit breaker is open, after consecutive
	// failures; the server was not called.
	ErrUnavailable = errors.New("ollama server unavailable (circuit breaker open)")
)

// Config describes one Ollama server.
type Config struct {
	// ID names the provider; "ollama" if empty.
	ID string
	// URL is the server's base URL; DefaultURL if empty. Its password, if
	// any, is never shown.
	URL string
	// Protocol is what the provider serves; DefaultProtocol if empty.
	Protocol string

	DialTimeout           time.Duration // DefaultDialTimeout if zero
	ResponseHeaderTimeout time.Duration // DefaultResponseHeaderTimeout if zero
	MaxConnsPerHost       int           // DefaultMaxConnsPerHost if zero

	Attempts     int           // tries of an idempotent call; DefaultAttempts if zero
	RetryBackoff time.Duration // the first wait between tries; DefaultRetryBackoff if zero

	BreakerFailures uint32        // DefaultBreakerFailures if zero
	BreakerOpenFor  time.Duration // DefaultBreakerOpenFor if zero

	// TracerProvider, if set, traces each request made for a caller whose
	// context holds a span: a client span under the caller's, and its
	// traceparent header, so that the server's own trace joins the
	// caller's. Health probes, which have no such caller, are not traced.
	TracerProvider trace.TracerProvider
}

// Provider is an Ollama client.
type Provider struct {
	cfg  Config
	base *url.URL
	safe string // base, redacted, for messages

	mu        sync.Mutex // guards the fields below
	client    *api.Client
	transport *http.Transport
	breaker   *gobreaker.CircuitBreaker[struct{}]
	calls     context.Context // cancelled by Cleanup: every request derives from it
	cancel    context.CancelFunc
	closed    bool
	running   sync.WaitGroup // calls in flight

	conns    atomic.Int64 // TCP connections open
	inflight atomic.Int64
}

var (
	_ lifecycle.Initializer   = (*Provider)(nil)
	_ lifecycle.Cleaner       = (*Provider)(nil)
	_ lifecycle.HealthChecker = (*Provider)(nil)
)

// New checks cfg and returns a provider that holds nothing until
// Initialize. A URL that is not an absolute http or https URL is an error
// that says so, without its password.
func New(cfg Config) (*Provider, error) {
	if cfg.ID == "" {
		cfg.ID = "ollama"
	}
	if cfg.URL == "" {
		cfg.URL = DefaultURL
	}
	base, err := url.Parse(cfg.URL)
	if err != nil && strings.Contains(cfg.URL, "@") {
		// The parser's own words may quote a piece of the password, its
		// start taken for a port ("invalid port \":ab\""): only the
		// redacted URL is given, and what is likely wrong with it.
		// Quoted before it is redacted: the quotes bound a password that
		// holds a space.
		return nil, fmt.Errorf("ollama %q: URL %s does not parse: a password must have its \"/\", \"?\", \"#\", \"@\" and spaces percent-escaped",
			cfg.ID, lifecycle.Redact(strconv.Quote(cfg.URL)))
	}
	if err != nil {
		return nil, fmt.Errorf("ollama %q: URL: %w", cfg.ID, lifecycle.RedactError(err))
	}
	safe := lifecycle.Redact(base.String()) // a token given as the user too, which url.Redacted keeps
	switch {
	case base.Scheme != "http" && base.Scheme != "https":
		return nil, fmt.Errorf("ollama %q: URL %q: scheme must be http or https", cfg.ID, safe)
	case base.Host == "":
		return nil, fmt.Errorf("ollama %q: URL %q has no host", cfg.ID, safe)
	}
	if cfg.DialTimeout < 0 || cfg.ResponseHeaderTimeout < 0 || cfg.MaxConnsPerHost < 0 || cfg.Attempts < 0 ||
		cfg.RetryBackoff < 0 || cfg.BreakerOpenFor < 0 {
		return nil, fmt.Errorf("ollama %q: negative timeouts, limits or retries", cfg.ID)
	}
	cfg.Protocol = or(cfg.Protocol, DefaultProtocol)
	cfg.DialTimeout = or(cfg.DialTimeout, DefaultDialTimeout)
	cfg.ResponseHeaderTimeout = or(cfg.ResponseHeaderTimeout, DefaultResponseHeaderTimeout)
	cfg.MaxConnsPerHost = or(cfg.MaxConnsPerHost, DefaultMaxConnsPerHost)
	cfg.Attempts = or(cfg.Attempts, DefaultAttempts)
	cfg.RetryBackoff = or(cfg.RetryBackoff, DefaultRetryBackoff)
	cfg.BreakerFailures = or(cfg.BreakerFailures, DefaultBreakerFailures)
	cfg.BreakerOpenFor = or(cfg.BreakerOpenFor, DefaultBreakerOpenFor)
	return &Provider{cfg: cfg, base: base, safe: safe}, nil
}

func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// ID returns the provider's id.
func (p *Provider) ID() string { return p.cfg.ID }

// Protocol returns what the provider serves.
func (p *Provider) Protocol() string { return p.cfg.Protocol }

// URL returns the server's URL, redacted.
func (p *Provider) URL() string { return p.safe }

// Initialize builds the transport, the client and the breaker. It does not
// call the server.
func (p *Provider) Initialize(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client != nil || p.closed {
		return fmt.Errorf("ollama %q: already initialized", p.cfg.ID)
	}
	dialer := &net.Dialer{Timeout: p.cfg.DialTimeout, KeepAlive: 30 * time.Second}
	p.transport = &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			p.conns.Add(1)
			return &countedConn{Conn: c, open: &p.conns}, nil
		},
		MaxConnsPerHost:       p.cfg.MaxConnsPerHost,
		MaxIdleConnsPerHost:   p.cfg.MaxConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: p.cfg.ResponseHeaderTimeout,
		TLSHandshakeTimeout:   10 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	var rt http.RoundTripper = p.transport
	if tp := p.cfg.TracerProvider; tp != nil && !isNilPointer(tp) {
		rt = otelhttp.NewTransport(tracedURL{p.transport, p.base}, otelhttp.WithTracerProvider(tp),
			otelhttp.WithPropagators(propagation.TraceContext{}),
			otelhttp.WithFilter(func(r *http.Request) bool { return trace.SpanContextFromContext(r.Context()).IsValid() }))
	}
	p.client = api.NewClient(p.base, &http.Client{Transport: rt})
	p.breaker = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:    p.cfg.ID,
		Timeout: p.cfg.BreakerOpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.ConsecutiveFailures >= p.cfg.BreakerFailures
		},
		IsSuccessful: answered,
		IsExcluded: func(err error) bool {
			var ce callerEnded
			return errors.Is(err, context.Canceled) || errors.As(err, &ce)
		},
	})
	p.calls, p.cancel = context.WithCancel(context.Background())
	return nil
}

// answered reports whether the server answered properly: no error, or a
// 4xx error, which is the caller's mistake and says the server is alive.
func answered(err error) bool {
	var se api.StatusError
	var ae api.AuthorizationError
	return err == nil ||
		errors.As(err, &se) && se.StatusCode >= 400 && se.StatusCode < 500 ||
		errors.As(err, &ae)
}

// retryable reports errors that another try may mend: a connection that
// failed or broke, or a 502, 503 or 504 from the server or a proxy.
func retryable(err error) bool {
	var se api.StatusError
	if errors.As(err, &se) {
		return se.StatusCode == http.StatusBadGateway || se.StatusCode == http.StatusServiceUnavailable ||
			se.StatusCode == http.StatusGatewayTimeout
	}
	var ne net.Error
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.As(err, &ne) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// callerEnded marks an error that came from the caller's context ending;
// the breaker does not count it.
type callerEnded struct{ err error }

func (c callerEnded) Error() string { return c.err.Error() }
func (c callerEnded) Unwrap() error { return c.err }

// call runs fn through the breaker, with a context that Cleanup cancels,
// and names the provider, the server and op in its error.
func (p *Provider) call(ctx context.Context, op string, fn func(context.Context, *api.Client) error) error {
	return p.run(ctx, op, fn, true)
}

// probe is call without the breaker, for health checks: a probe that
// fails must not count towards opening it (looking at the service would
// then open it), and an open breaker must not stop a probe from seeing that
// the server is back.
func (p *Provider) probe(ctx context.Context, op string, fn func(context.Context, *api.Client) error) error {
	return p.run(ctx, op, fn, false)
}

func (p *Provider) run(ctx context.Context, op string, fn func(context.Context, *api.Client) error, viaBreaker bool) error {
	p.mu.Lock()
	if p.client == nil || p.closed {
		p.mu.Unlock()
		return fmt.Errorf("ollama %q (%s): %s: %w", p.cfg.ID, p.safe, op, ErrClosed)
	}
	p.running.Add(1)
	client, breaker, calls := p.client, p.breaker, p.calls
	p.mu.Unlock()
	defer p.running.Done()
	p.inflight.Add(1)
	defer p.inflight.Add(-1)

	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(calls, cancel)
	defer stop()

	var err error
	if viaBreaker {
		_, err = breaker.Execute(func() (struct{}, error) {
			err := fn(cctx, client)
			if err != nil && ctx.Err() != nil {
				// The caller's own deadline or cancellation: not the server's
				// failure. A client sending short timeouts must not open the
				// breaker for everyone.
				return struct{}{}, callerEnded{err}
			}
			return struct{}{}, err
		})
		if ce, ok := err.(callerEnded); ok {
			err = ce.err
		}
	} else {
		err = fn(cctx, client)
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
		return fmt.Errorf("ollama %q (%s): %s: %w", p.cfg.ID, p.safe, op, ErrUnavailable)
	case calls.Err() != nil && ctx.Err() == nil:
		return fmt.Errorf("ollama %q (%s): %s: %w (cancelled by cleanup): %w", p.cfg.ID, p.safe, op, ErrClosed, err)
	}
	return fmt.Errorf("ollama %q (%s): %s: %w", p.cfg.ID, p.safe, op, lifecycle.RedactError(err))
}

// retry runs an idempotent call up to Attempts times, with exponential
// backoff, while its errors are retryable.
func (p *Provider) retry(ctx context.Context, op string, fn func(context.Context, *api.Client) error) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval = p.cfg.RetryBackoff, 2*time.Second
	// last is the last attempt's error that says something about the
	// server, not one made after ctx ended, which fails with ctx's error.
	var last error
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		err := p.call(ctx, op, fn)
		if err != nil && (ctx.Err() == nil || last == nil) {
			last = err
		}
		if err != nil && !retryable(err) {
			return struct{}{}, backoff.Permanent(err)
		}
		return struct{}{}, err
	}, backoff.WithBackOff(b), backoff.WithMaxTries(uint(p.cfg.Attempts)), backoff.WithMaxElapsedTime(0))
	if err != nil && last != nil && !errors.Is(err, last) {
		return fmt.Errorf("%w (last attempt: %w)", err, last)
	}
	return err
}

// Generate generates a completion; fn receives each streamed response, or
// the one response when req.Stream is false. A stream that ends before its
// final response (the connection broke, or Cleanup cancelled it) is an
// error, although the official client reports it as success.
func (p *Provider) Generate(ctx context.Context, req *api.GenerateRequest, fn api.GenerateResponseFunc) error {
	if fn == nil {
		return fmt.Errorf("ollama %q: generate: nil response function", p.cfg.ID)
	}
	return p.call(ctx, "generate", func(ctx context.Context, c *api.Client) error {
		var done bool
		err := c.Generate(ctx, req, func(r api.GenerateResponse) error {
			done = done || r.Done
			return fn(r)
		})
		return complete(ctx, err, done)
	})
}

// Chat generates the next message of a chat; fn receives each streamed
// response, or the one response when req.Stream is false. A stream that
// ends before its final response is an error, as for Generate.
func (p *Provider) Chat(ctx context.Context, req *api.ChatRequest, fn api.ChatResponseFunc) error {
	if fn == nil {
		return fmt.Errorf("ollama %q: chat: nil response function", p.cfg.ID)
	}
	return p.call(ctx, "chat", func(ctx context.Context, c *api.Client) error {
		var done bool
		err := c.Chat(ctx, req, func(r api.ChatResponse) error {
			done = done || r.Done
			return fn(r)
		})
		return complete(ctx, err, done)
	})
}

// ErrIncomplete: a streamed response ended before its final object.
var ErrIncomplete = errors.New("response ended before it was done")

// complete turns a stream that the client let end quietly, without its
// final object, into an error: the context's, if it was cancelled.
func complete(ctx context.Context, err error, done bool) error {
	switch {
	case err != nil:
		return err
	case done:
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("%w: %w", ErrIncomplete, ctx.Err())
	}
	return ErrIncomplete
}

// Embed generates embeddings for one input or several.
func (p *Provider) Embed(ctx context.Context, req *api.EmbedRequest) (*api.EmbedResponse, error) {
	var resp *api.EmbedResponse
	err := p.call(ctx, "embed", func(ctx context.Context, c *api.Client) (err error) {
		resp, err = c.Embed(ctx, req)
		return err
	})
	return resp, err
}

// Embeddings generates an embedding with the older endpoint.
func (p *Provider) Embeddings(ctx context.Context, req *api.EmbeddingRequest) (*api.EmbeddingResponse, error) {
	var resp *api.EmbeddingResponse
	err := p.call(ctx, "embeddings", func(ctx context.Context, c *api.Client) (err error) {
		resp, err = c.Embeddings(ctx, req)
		return err
	})
	return resp, err
}

// List lists the server's models, retrying.
func (p *Provider) List(ctx context.Context) (*api.ListResponse, error) {
	var resp *api.ListResponse
	err := p.retry(ctx, "list models", func(ctx context.Context, c *api.Client) (err error) {
		resp, err = c.List(ctx)
		return err
	})
	return resp, err
}

// Version returns the server's version, retrying.
func (p *Provider) Version(ctx context.Context) (string, error) {
	var v string
	err := p.retry(ctx, "version", func(ctx context.Context, c *api.Client) (err error) {
		v, err = c.Version(ctx)
		return err
	})
	return v, err
}

// Cleanup cancels the requests in flight, waits for them to return, and
// closes every connection, within ctx. It is idempotent, and safe after a
// failed Initialize. If ctx ends first, it says what is still open.
func (p *Provider) Cleanup(ctx context.Context) error {
	p.mu.Lock()
	if p.closed || p.client == nil {
		p.closed = true
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	cancel, transport := p.cancel, p.transport
	p.mu.Unlock()

	cancel()
	// Closed first, whatever is left of ctx: a Stop out of time gives
	// its last cleanups a done context, and closing what is idle takes
	// none.
	transport.CloseIdleConnections()
	returned := make(chan struct{})
	go func() { p.running.Wait(); close(returned) }() // the calls return at once: their requests are cancelled
	select {
	case <-returned:
	case <-ctx.Done():
		select {
		case <-returned: // they had: both were ready
		default:
			return fmt.Errorf("ollama %q (%s): %d calls still running: %w", p.cfg.ID, p.safe, p.inflight.Load(), ctx.Err())
		}
	}
	transport.CloseIdleConnections()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for p.conns.Load() > 0 {
		transport.CloseIdleConnections()
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("ollama %q (%s): %d connections still open: %w", p.cfg.ID, p.safe, p.conns.Load(), ctx.Err())
		}
	}
	return nil
}

// HealthCheck asks the server for its version, once, through the breaker.
// Its resources: "url", "protocol", "reachable", "version",
// "open_connections", "calls_in_flight", "breaker" and
// "consecutive_failures".
func (p *Provider) HealthCheck(ctx context.Context) lifecycle.Health {
	p.mu.Lock()
	breaker, ready := p.breaker, p.client != nil && !p.closed
	p.mu.Unlock()
	res := map[string]any{
		"url":             p.safe,
		"protocol":        p.cfg.Protocol,
		"reachable":       false,
		"calls_in_flight": p.inflight.Load(),
	}
	defer func() { res["open_connections"] = p.conns.Load() }()
	if !ready {
		return lifecycle.Health{Status: lifecycle.StatusUnhealthy, Message: "client is closed", Resources: res}
	}
	res["breaker"] = breaker.State().String()
	res["consecutive_failures"] = breaker.Counts().ConsecutiveFailures
	var v string
	err := p.probe(ctx, "version", func(ctx context.Context, c *api.Client) (err error) {
		v, err = c.Version(ctx)
		return err
	})
	res["breaker"] = breaker.State().String()
	res["consecutive_failures"] = breaker.Counts().ConsecutiveFailures
	if err != nil {
		return lifecycle.Health{Status: lifecycle.StatusUnhealthy, Message: "unreachable: " + err.Error(), Resources: res}
	}
	res["reachable"], res["version"] = true, v
	if breaker.State() != gobreaker.StateClosed {
		return lifecycle.Health{Status: lifecycle.StatusDegraded, Message: "recovering: breaker " + breaker.State().String(), Resources: res}
	}
	return lifecycle.Health{Status: lifecycle.StatusHealthy, Message: "reachable, version " + v, Resources: res}
}

// countedConn counts itself out of the open connections when closed, once.
type countedConn struct {
	net.Conn
	open   *atomic.Int64
	closed atomic.Bool
}

func (c *countedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.open.Add(-1)
	}
	return c.Conn.Close()
}
