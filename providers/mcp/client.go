package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

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

// ErrNotInitialized: Call, Notify or HealthCheck came before Initialize
// had completed the handshake. Nothing but the handshake is sent before it.
var ErrNotInitialized = errors.New("mcp: the session is not initialized")

// Config describes one MCP server run as a child process over stdio.
type Config struct {
	// Process is the child: ID ("mcp" if empty), Command, Dir, Env,
	// InheritEnv, Protocol ("mcp" if empty), Grace, Stderr, OnOutputError
	// and OnExit. ReadyMethod, HealthMethod, Handler and CloseWait are the
	// client's: New refuses them.
	Process process.Config
	// ClientName and ClientVersion are sent as clientInfo; if empty,
	// DefaultClientName and this module's version.
	ClientName, ClientVersion string
	// Log receives what the server sends on its own: its log messages, its
	// progress, its lists' changes, the requests refused. Every line
	// carries zap.String("provider", id). Nil logs nowhere.
	Log *zap.Logger
	// CloseWait bounds how long Cleanup waits for the server to exit once
	// its stdin is closed; DefaultCloseWait if zero.
	CloseWait time.Duration
	// Roots are the directories the client offers the server, as file://
	// URIs: with any, the client declares the roots capability and answers
	// roots/list with them, and a server that hides what needs them (a
	// filesystem server, server-everything's get-roots-list) shows it.
	Roots []Root
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

// Client is an MCP client of one server that runs as a child process and
// speaks over its stdin and stdout.
type Client struct {
	cfg  Config
	log  *zap.Logger
	proc *process.Process
	ids  atomic.Uint64 // the last request id used

	mu      sync.Mutex // guards session
	session *Session   // set once notifications/initialized is sent

	routes *progressRoutes // the calls that asked for progress
}

var (
	_ lifecycle.Initializer   = (*Client)(nil)
	_ lifecycle.Cleaner       = (*Client)(nil)
	_ lifecycle.HealthChecker = (*Client)(nil)
)

// New checks cfg and returns a client whose server is not started until
// Initialize.
func New(cfg Config) (*Client, error) {
	pc := cfg.Process
	switch {
	case pc.ReadyMethod != "":
		return nil, errors.New("mcp: Config.Process.ReadyMethod is set: the handshake is initialize, which the client sends")
	case pc.HealthMethod != "":
		return nil, errors.New("mcp: Config.Process.HealthMethod is set: the health check is ping, which the client sends")
	case pc.Handler != nil:
		return nil, errors.New("mcp: Config.Process.Handler is set: the client handles what the server sends")
	case pc.CloseWait != 0:
		return nil, errors.New("mcp: Config.Process.CloseWait is set: use Config.CloseWait")
	case cfg.CloseWait < 0:
		return nil, fmt.Errorf("mcp: Config.CloseWait is negative (%v)", cfg.CloseWait)
	}
	if pc.ID == "" {
		pc.ID = "mcp"
	}
	if pc.Protocol == "" {
		pc.Protocol = "mcp"
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
	log := cfg.Log
	if log == nil {
		log = zap.NewNop()
	}
	log = log.With(zap.String("provider", pc.ID))
	pc.CloseWait = cfg.CloseWait
	routes := &progressRoutes{}
	pc.Handler = serverTraffic{log: log, routes: routes, roots: slices.Clone(cfg.Roots)}
	proc, err := process.New(pc)
	if err != nil {
		return nil, fmt.Errorf("mcp: %w", err)
	}
	cfg.Process = pc
	return &Client{cfg: cfg, log: log, proc: proc, routes: routes}, nil
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
func (c *Client) ID() string { return c.cfg.Process.ID }

// Protocol returns what the server serves, as configured: "mcp" by
// default.
func (c *Client) Protocol() string { return c.proc.Protocol() }

// Initialize starts the server and performs MCP's handshake: initialize,
// asking for [LatestVersion] and offering roots if it has any, a check that
// the server answered a version this client speaks, then
// notifications/initialized. If it fails, the child is left for Cleanup.
func (c *Client) Initialize(ctx context.Context) error {
	if err := c.proc.Initialize(ctx); err != nil {
		return err
	}
	capabilities := map[string]any{}
	if len(c.cfg.Roots) > 0 {
		// Fixed for the client's life: it never sends list_changed.
		capabilities["roots"] = map[string]any{"listChanged": false}
	}
	params := map[string]any{
		"protocolVersion": LatestVersion,
		"capabilities":    capabilities,
		"clientInfo":      map[string]string{"name": c.cfg.ClientName, "version": c.cfg.ClientVersion},
	}
	// The specification forbids cancelling initialize.
	raw, err := c.request(ctx, "initialize", params, false)
	if err != nil {
		return fmt.Errorf("mcp %q: handshake: %w", c.ID(), err)
	}
	var res struct {
		ProtocolVersion string         `json:"protocolVersion"`
		Capabilities    map[string]any `json:"capabilities"`
		ServerInfo      struct {
			Name    string `json:"name"`
			Version string `json:"version"`
		} `json:"serverInfo"`
		Instructions string `json:"instructions"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return fmt.Errorf("mcp %q: handshake: the answer to initialize: %w", c.ID(), err)
	}
	if !supported(res.ProtocolVersion) {
		return fmt.Errorf("mcp %q: handshake: asked for protocol version %s, the server answered %q; this client speaks %s",
			c.ID(), LatestVersion, res.ProtocolVersion, versionList())
	}
	if err := c.proc.Notify(ctx, "notifications/initialized", nil); err != nil {
		return fmt.Errorf("mcp %q: handshake: %w", c.ID(), err)
	}
	c.mu.Lock()
	c.session = &Session{
		ProtocolVersion: res.ProtocolVersion,
		ServerName:      res.ServerInfo.Name,
		ServerVersion:   res.ServerInfo.Version,
		Capabilities:    res.Capabilities,
		Instructions:    res.Instructions,
	}
	c.mu.Unlock()
	return nil
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

// Cleanup shuts the server down as MCP's stdio transport asks: it closes
// the server's stdin, waits up to CloseWait for it to exit, then sends
// SIGTERM and, after the grace period, SIGKILL, all within ctx. See
// [process.Process.Cleanup].
func (c *Client) Cleanup(ctx context.Context) error { return c.proc.Cleanup(ctx) }

// HealthCheck reports the process's health and, while it runs, whether
// the server answers ping. Its resources are the process's, and once
// initialized, "server_name", "server_version", "protocol_version" and
// Running reports, without calling the server, whether its process runs
// and can be reached: see [process.Process.Running].
func (c *Client) Running() bool { return c.proc.Running() }

// Reaped reports whether the server's process has exited and been reaped:
// see [process.Process.Reaped].
func (c *Client) Reaped() bool { return c.proc.Reaped() }

// "capabilities".
func (c *Client) HealthCheck(ctx context.Context) lifecycle.Health {
	h := c.proc.HealthCheck(ctx)
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
	if _, err := c.request(ctx, "ping", nil, true); err != nil {
		h.Status, h.Message = process.HealthCallStatus(err, busy), err.Error()
	}
	return h
}
