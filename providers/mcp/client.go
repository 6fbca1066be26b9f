package mcp

//lint:file-ignore SA1019 roots, sampling and logging are deprecated from MCP 2026-07-28, which this client does not speak; the revisions it speaks have them, and servers use them.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"go.uber.org/zap"

	"github.com/gleitzeit/gleitzeit/lifecycle"
	"github.com/gleitzeit/gleitzeit/providers/process"
)

// DefaultCloseWait is how long Cleanup waits, once the server's stdin is
// closed, for it to exit by itself before SIGTERM: a server that exits at
// the end of its input, as the reference server does, takes milliseconds.
const DefaultCloseWait = 2 * time.Second

// DefaultClientName is the clientInfo name sent when Config.ClientName is
// empty.
const DefaultClientName = "gleitzeit"

// ErrNotInitialized: Call or HealthCheck came before Initialize had
// completed the handshake. Nothing but the handshake is sent before it.
var ErrNotInitialized = errors.New("mcp: the session is not initialized")

// ErrSessionEnded: the session with a remote server has ended (the server
// went away, or forgot the session), and calls on it fail. The provider is
// to be cleaned up and a new one initialized: a reconnection is a new
// session.
var ErrSessionEnded = errors.New("mcp: the session has ended")

// Config describes one MCP server: a child process spoken to over stdio
// (Process), or a server already running, spoken to over Streamable HTTP
// (Remote, with its URL set).
type Config struct {
	// Process is the child: ID ("mcp" if empty), Command, Dir, Env,
	// InheritEnv, Protocol ("mcp" if empty), Grace, Stderr, OnOutputError
	// and OnExit. ReadyMethod, HealthMethod, Handler, CloseWait and
	// OwnStdio are the client's: New refuses them. Unused with Remote.
	Process process.Config
	// Remote, if its URL is set, is the server to reach over HTTP instead
	// of a child.
	Remote Remote
	// ClientName and ClientVersion are sent as clientInfo; if empty,
	// DefaultClientName and this module's version.
	ClientName, ClientVersion string
	// Log receives what the server sends on its own: its log messages, its
	// progress, its lists' changes, the requests refused. Every line
	// carries zap.String("provider", id). Nil logs nowhere.
	Log *zap.Logger
	// CloseWait bounds how long Cleanup waits for a child to exit once its
	// stdin is closed; DefaultCloseWait if zero.
	CloseWait time.Duration
	// Roots are the directories the client offers the server, as file://
	// URIs: with any, the client declares the roots capability and answers
	// roots/list with them, and a server that hides what needs them (a
	// filesystem server, server-everything's get-roots-list) shows it.
	Roots []Root
	// Sampler, if set, answers the server's sampling/createMessage, and
	// the client declares the sampling capability; without it, it does
	// not, and such requests are refused.
	Sampler Sampler
}

// Remote is an MCP server that is already running, reached over MCP's
// Streamable HTTP transport.
type Remote struct {
	// ID names the provider; "mcp" if empty.
	ID string
	// Protocol names what the server serves, for routing; "mcp" if empty.
	Protocol string
	// URL is the server's MCP endpoint, http or https.
	URL string
	// Header is sent with every request: a bearer token, say. Its values
	// appear in no log, health or error.
	Header http.Header
	// HTTPClient sends the requests; if nil, one whose connections time
	// out (dial, TLS, response headers) but whose streams do not. It
	// follows no redirect, whatever it is given: the URL is the endpoint.
	HTTPClient *http.Client
	// OnEnd, if set, is told once, from a goroutine of the client's, when
	// the session ends by itself (not by Cleanup), with why: the signal to
	// replace the provider, as OnExit is for a child.
	OnEnd func(error)
}

// Root is one root the client offers: a file:// URI and a name for it.
type Root struct {
	URI  string `json:"uri"`
	Name string `json:"name,omitempty"`
}

// Session is what the server said of itself in answer to initialize.
type Session struct {
	ProtocolVersion string
	ServerName      string
	ServerVersion   string
	// Capabilities are the server's, as JSON decodes them.
	Capabilities map[string]any
	Instructions string
}

// Client is an MCP client of one server.
type Client struct {
	cfg      Config
	id       string
	protocol string
	log      *zap.Logger
	proc     *process.Process // the child; nil for a remote server
	sdk      *sdk.Client
	routes   *progressRoutes // the calls that asked for progress
	// brokenOutput is the child's Config.OnOutputError, told here, since
	// the SDK reads the child's output.
	brokenOutput func(error)
	inflight     atomic.Int64 // a remote server's calls in flight
	shown        string       // a remote server's URL as errors, health and logs show it
	// calls is cancelled when Cleanup begins, ending the calls in flight:
	// a session is not closed under them, and a server that hangs does
	// not hold Cleanup.
	calls    context.Context
	endCalls context.CancelFunc

	mu      sync.Mutex // guards the fields below
	cs      *sdk.ClientSession
	session *Session      // set once notifications/initialized is sent
	ended   chan struct{} // closed when the session has ended
	endErr  error         // why, once ended is closed
	closing bool          // Cleanup has begun
}

var (
	_ lifecycle.Initializer   = (*Client)(nil)
	_ lifecycle.Cleaner       = (*Client)(nil)
	_ lifecycle.HealthChecker = (*Client)(nil)
)

// New checks cfg and returns a client whose server is not started (or,
// remote, not reached) until Initialize.
func New(cfg Config) (*Client, error) {
	if cfg.CloseWait < 0 {
		return nil, fmt.Errorf("mcp: Config.CloseWait is negative (%v)", cfg.CloseWait)
	}
	if cfg.CloseWait == 0 {
		cfg.CloseWait = DefaultCloseWait
	}
	if cfg.ClientName == "" {
		cfg.ClientName = DefaultClientName
	}
	if cfg.ClientVersion == "" {
		cfg.ClientVersion = moduleVersion()
	}
	c := &Client{cfg: cfg, routes: &progressRoutes{}}
	c.calls, c.endCalls = context.WithCancel(context.Background())
	if cfg.Remote.URL != "" {
		if err := c.remote(); err != nil {
			return nil, err
		}
	} else if err := c.child(); err != nil {
		return nil, err
	}
	log := cfg.Log
	if log == nil {
		log = zap.NewNop()
	}
	c.log = log.With(zap.String("provider", c.id))
	c.sdk = sdk.NewClient(&sdk.Implementation{Name: cfg.ClientName, Version: cfg.ClientVersion}, c.options())
	if len(cfg.Roots) > 0 {
		roots := make([]*sdk.Root, 0, len(cfg.Roots))
		for _, r := range cfg.Roots {
			roots = append(roots, &sdk.Root{URI: r.URI, Name: r.Name})
		}
		c.sdk.AddRoots(roots...)
	}
	c.sdk.AddReceivingMiddleware(c.serverTraffic)
	return c, nil
}

// child checks and completes the config of a server run as a child.
func (c *Client) child() error {
	pc := c.cfg.Process
	switch {
	case pc.ReadyMethod != "":
		return errors.New("mcp: Config.Process.ReadyMethod is set: the handshake is initialize, which the client sends")
	case pc.HealthMethod != "":
		return errors.New("mcp: Config.Process.HealthMethod is set: the health check is ping, which the client sends")
	case pc.Handler != nil:
		return errors.New("mcp: Config.Process.Handler is set: the client handles what the server sends")
	case pc.CloseWait != 0:
		return errors.New("mcp: Config.Process.CloseWait is set: use Config.CloseWait")
	case pc.OwnStdio:
		return errors.New("mcp: Config.Process.OwnStdio is set: the client takes the child's stdio itself")
	}
	if pc.ID == "" {
		pc.ID = "mcp"
	}
	if pc.Protocol == "" {
		pc.Protocol = "mcp"
	}
	pc.CloseWait = c.cfg.CloseWait
	pc.OwnStdio = true
	c.brokenOutput, pc.OnOutputError = pc.OnOutputError, nil
	proc, err := process.New(pc)
	if err != nil {
		return fmt.Errorf("mcp: %w", err)
	}
	c.cfg.Process = pc
	c.id, c.protocol, c.proc = pc.ID, pc.Protocol, proc
	return nil
}

// options are the SDK client's: the capabilities declared (roots, only if
// there are any; sampling, only with a Sampler), and no multi-round-trip
// requests, which belong to a
// revision this client does not speak.
func (c *Client) options() *sdk.ClientOptions {
	caps := &sdk.ClientCapabilities{}
	if len(c.cfg.Roots) > 0 {
		// Fixed for the client's life: it never sends list_changed.
		caps.RootsV2 = &sdk.RootCapabilities{}
	}
	opts := &sdk.ClientOptions{
		Capabilities:   caps,
		MultiRoundTrip: &sdk.MultiRoundTripOptions{Disabled: true},
	}
	if c.cfg.Sampler != nil {
		opts.CreateMessageHandler = c.createMessage
	}
	return opts
}

// moduleVersion is this module's version in the binary's build, or
// "(devel)".
func moduleVersion() string {
	const module = "github.com/gleitzeit/gleitzeit"
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Path == module && bi.Main.Version != "" {
			return bi.Main.Version
		}
		for _, dep := range bi.Deps {
			if dep.Path == module {
				return dep.Version
			}
		}
	}
	return "(devel)"
}

// ID returns the provider's id.
func (c *Client) ID() string { return c.id }

// Protocol returns what the server serves, as configured: "mcp" by
// default.
func (c *Client) Protocol() string { return c.protocol }

// Initialize starts the server (or reaches it) and performs MCP's
// handshake: initialize, asking for [LatestVersion] and offering roots if
// it has any, a check that the server answered a version this client
// speaks, then notifications/initialized. If it fails, what it holds is
// left for Cleanup.
func (c *Client) Initialize(ctx context.Context) error {
	c.mu.Lock()
	if c.ended != nil || c.closing {
		c.mu.Unlock()
		return fmt.Errorf("mcp %q: already initialized", c.id)
	}
	c.ended = make(chan struct{})
	c.mu.Unlock()
	transport, err := c.transport(ctx)
	if err != nil {
		return err
	}
	cs, err := c.sdk.Connect(ctx, transport, &sdk.ClientSessionOptions{ProtocolVersion: LatestVersion})
	if err != nil {
		// A remote server's error may quote its URL.
		return fmt.Errorf("mcp %q: handshake: %w", c.id, c.scrub(c.handshakeError(err)))
	}
	res := cs.InitializeResult()
	if !supported(res.ProtocolVersion) {
		_ = cs.Close()
		return fmt.Errorf("mcp %q: handshake: asked for protocol version %s, the server answered %q; this client speaks %s",
			c.id, LatestVersion, res.ProtocolVersion, versionList())
	}
	s := &Session{ProtocolVersion: res.ProtocolVersion, Instructions: res.Instructions}
	if res.ServerInfo != nil {
		s.ServerName, s.ServerVersion = res.ServerInfo.Name, res.ServerInfo.Version
	}
	if raw, err := json.Marshal(res.Capabilities); err == nil {
		_ = json.Unmarshal(raw, &s.Capabilities)
	}
	c.mu.Lock()
	c.cs, c.session = cs, s
	c.mu.Unlock()
	go c.watch(cs)
	return nil
}

// handshakeError says what an answer to initialize that the SDK refused
// was wrong with, or why there was none.
func (c *Client) handshakeError(err error) error {
	if c.proc != nil && !c.proc.Running() {
		return c.proc.Closed(context.Background())
	}
	// The SDK's error for a version it does not speak is not exported.
	if strings.HasPrefix(err.Error(), "unsupported protocol version") {
		return fmt.Errorf("asked for protocol version %s: %w; this client speaks %s", LatestVersion, err, versionList())
	}
	return err
}

// watch waits for the session to end, records why, and, if nobody asked
// for it, says so: the child's output that could not be read, or the
// remote session that is gone.
func (c *Client) watch(cs *sdk.ClientSession) {
	err := cs.Wait()
	c.mu.Lock()
	c.endErr = err
	close(c.ended)
	closing := c.closing
	c.mu.Unlock()
	if closing {
		return
	}
	if c.proc != nil {
		if err != nil && c.proc.Running() {
			c.proc.OutputBroken(err)
			if !c.proc.Running() && c.brokenOutput != nil {
				c.brokenOutput(fmt.Errorf("mcp %q: its output is not MCP: %w", c.id, err))
			}
		}
		return
	}
	c.log.Warn("mcp session ended", zap.String("server", c.shown), zap.Error(c.scrub(err)))
	if c.cfg.Remote.OnEnd != nil {
		c.cfg.Remote.OnEnd(c.sessionEnded())
	}
}

// sessionEnded is the error of a call on a session that has ended.
func (c *Client) sessionEnded() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.endErr != nil {
		return fmt.Errorf("%w: %s", ErrSessionEnded, c.scrub(c.endErr).Error())
	}
	return ErrSessionEnded
}

// live reports whether the session has been initialized and has not
// ended, and returns it.
func (c *Client) live() (*sdk.ClientSession, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cs == nil || c.closing {
		return c.cs, false
	}
	select {
	case <-c.ended:
		return c.cs, false
	default:
		return c.cs, true
	}
}

// Session returns what the server said of itself, once Initialize has
// succeeded.
func (c *Client) Session() (Session, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.session == nil {
		return Session{}, false
	}
	s := *c.session
	s.Capabilities = maps.Clone(s.Capabilities)
	return s, true
}

// sessionCloseWait bounds the closing of a remote session: the SDK's
// HTTP DELETE that tells the server has 5 seconds.
const sessionCloseWait = 5 * time.Second

// Cleanup ends the session. A child is shut down as MCP's stdio transport
// asks: its stdin is closed, it gets up to CloseWait to exit, answering
// the calls in flight, then SIGTERM and, after the grace period, SIGKILL,
// all within ctx (see [process.Process.Cleanup]). A remote session's calls
// in flight are ended, and the session closed, which tells the server,
// within ctx and at most 5 seconds.
func (c *Client) Cleanup(ctx context.Context) error {
	c.mu.Lock()
	c.closing = true
	cs := c.cs
	c.mu.Unlock()
	var err error
	if c.proc != nil {
		err = c.proc.Cleanup(ctx) // the pipes are closed: the SDK's reading ends
	}
	c.endCalls()
	// A remote session's keep-alive connections end with it, not minutes
	// later, and so do those of a handshake that failed: nothing of the
	// client's outlives its cleanup.
	closeIdle := func() {}
	if hc := c.cfg.Remote.HTTPClient; c.proc == nil && hc != nil {
		closeIdle = hc.CloseIdleConnections
	}
	if cs == nil {
		closeIdle()
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, sessionCloseWait)
	defer cancel()
	closed := make(chan error, 1)
	go func() { closed <- cs.Close() }()
	select {
	case <-closed:
		closeIdle()
	case <-ctx.Done():
		// Left to end by itself (the SDK bounds its request), and its
		// connection closed once it has.
		go func() { <-closed; closeIdle() }()
		return errors.Join(err, fmt.Errorf("mcp %q: closing the session: %w", c.id, ctx.Err()))
	}
	return err
}

// Running reports, without calling the server, whether a call could reach
// it: the session is initialized and has not ended, and a child runs (see
// [process.Process.Running]).
func (c *Client) Running() bool {
	if _, ok := c.live(); !ok {
		return false
	}
	return c.proc == nil || c.proc.Running()
}

// Reaped reports whether the server's process has exited and been reaped
// (see [process.Process.Reaped]); a remote server has none, and never has.
func (c *Client) Reaped() bool { return c.proc != nil && c.proc.Reaped() }

// HealthCheck reports the process's health (a child's) or the session's
// (a remote server's) and, while it is up, whether the server answers
// ping. Its resources are the process's, or "url", "calls_in_flight" and
// "protocol"; and once initialized, "server_name", "server_version",
// "protocol_version" and "capabilities".
func (c *Client) HealthCheck(ctx context.Context) lifecycle.Health {
	h := c.baseHealth(ctx)
	s, ok := c.Session()
	if ok {
		h.Resources["server_name"] = s.ServerName
		h.Resources["server_version"] = s.ServerVersion
		h.Resources["protocol_version"] = s.ProtocolVersion
		h.Resources["capabilities"] = s.Capabilities
	}
	switch {
	case h.Status != lifecycle.StatusHealthy:
		return h
	case !ok:
		h.Status, h.Message = lifecycle.StatusUnhealthy, ErrNotInitialized.Error()
		return h
	}
	busy, _ := h.Resources["calls_in_flight"].(int64)
	ctx, cancel := process.HealthCallContext(ctx)
	defer cancel()
	if _, err := c.Call(ctx, "ping", nil); err != nil {
		h.Status, h.Message = process.HealthCallStatus(err, busy), err.Error()
	}
	return h
}

// baseHealth is the child's health, or the remote session's.
func (c *Client) baseHealth(ctx context.Context) lifecycle.Health {
	if c.proc != nil {
		return c.proc.HealthCheck(ctx)
	}
	res := map[string]any{
		"url":             c.shown,
		"calls_in_flight": c.inflight.Load(),
		"protocol":        c.protocol,
	}
	c.mu.Lock()
	closing, started := c.closing, c.cs != nil
	c.mu.Unlock()
	_, live := c.live()
	switch {
	case closing:
		return lifecycle.Health{Status: lifecycle.StatusUnhealthy, Message: "cleaned up", Resources: res}
	case started && !live:
		return lifecycle.Health{Status: lifecycle.StatusUnhealthy, Message: c.sessionEnded().Error(), Resources: res}
	}
	return lifecycle.Health{Status: lifecycle.StatusHealthy, Message: "connected", Resources: res}
}
