package app

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/gleitzeit/gleitzeit/app/config"
	"github.com/gleitzeit/gleitzeit/app/pool"
	"github.com/gleitzeit/gleitzeit/lifecycle"
	"github.com/gleitzeit/gleitzeit/providers/mcp"
	"github.com/gleitzeit/gleitzeit/providers/ollama"
	"github.com/gleitzeit/gleitzeit/providers/process"
)

// endpoint is how tasks reach one instance: its protocol's methods.
type endpoint struct {
	call handler
}

// build makes, without starting it, the provider of an instance of a
// template; exited is told when its child exits.
func (e *Engine) build(id string, t config.Template, exited func(pool.Exit)) (lifecycle.Provider, endpoint, error) {
	p, ep, err := e.buildKind(id, t, exited)
	if err == nil && e.endpointHook != nil {
		ep = e.endpointHook(ep)
	}
	return p, ep, err
}

func (e *Engine) buildKind(id string, t config.Template, exited func(pool.Exit)) (lifecycle.Provider, endpoint, error) {
	switch t.Kind {
	case "ollama":
		p, err := ollama.New(ollama.Config{ID: id, URL: t.Ollama.URL, Protocol: t.Protocol, TracerProvider: e.tp})
		if err != nil {
			return nil, endpoint{}, err
		}
		return p, endpoint{call: llmHandler(p)}, nil
	case "process":
		p, err := process.New(e.processConfig(id, t, exited))
		if err != nil {
			return nil, endpoint{}, err
		}
		return p, endpoint{call: rpcHandler(p)}, nil
	case "mcp":
		cfg := mcp.Config{ClientName: mcpClientName, Log: e.log.Named("mcp"), Roots: mcpRoots(t.MCP)}
		if t.MCP != nil && t.MCP.Sampling != nil {
			cfg.Sampler = e.sampler(t.MCP.Sampling)
		}
		if t.Process != nil {
			cfg.Process = e.processConfig(id, t, exited)
		} else {
			remote, err := mcpRemote(id, t, exited)
			if err != nil {
				return nil, endpoint{}, err
			}
			cfg.Remote = remote
		}
		c, err := mcp.New(cfg)
		if err != nil {
			return nil, endpoint{}, err
		}
		return c, endpoint{call: mcpHandler(c)}, nil
	}
	return nil, endpoint{}, fmt.Errorf("template kind %q", t.Kind)
}

// mcpClientName is the clientInfo name the service gives MCP servers; the
// version is the module's.
const mcpClientName = "gleitzeit-service"

// processConfig is the child of a process or mcp template: its stderr
// logged a line at a time, its exit told to its pool with the last line.
func (e *Engine) processConfig(id string, t config.Template, exited func(pool.Exit)) process.Config {
	grace, _ := time.ParseDuration(t.Process.Grace) // checked by Load
	log := e.log.With(zap.String("provider", id))
	stderr := newChildStderr(e.log, id)
	// A child whose output broke is cut off by the service, and may then
	// exit 0 at the end of its stdin, as a stdio server should: a failure
	// all the same, for the restart policy.
	var broken atomic.Bool
	return process.Config{ID: id, Command: t.Process.Command, Dir: t.Process.Dir,
		Env: t.Process.Env, InheritEnv: t.Process.InheritEnv, Protocol: t.Protocol,
		Stderr: stderr,
		OnOutputError: func(err error) {
			broken.Store(true)
			log.Error("child process output is not JSON-RPC: it cannot be used", zap.String("error", lifecycle.Redact(err.Error())))
			// Useless from now on, even if it runs on: its pool treats it
			// as dead, and removing it ends it.
			exited(pool.Exit{Status: "its output is not JSON-RPC", Failed: true, Cut: true, LastLine: stderr.lastLine()})
		},
		OnExit: func(x process.Exit) {
			exited(pool.Exit{Pid: x.Pid, Status: x.String(), Failed: x.Code != 0 || x.Signal != "" || x.Err != nil || broken.Load(),
				Expected: x.CleanedUp, LastLine: stderr.lastLine(), Busy: x.Calls > 0})
		},
		Grace: grace, ReadyMethod: t.Process.ReadyMethod, HealthMethod: t.Process.HealthMethod}
}

// mcpRemote is the server of an mcp template that names a URL: its headers
// read from the environment now, and the end of its session told to its
// pool as a child's exit is, so that the pool reconnects, backing off.
func mcpRemote(id string, t config.Template, exited func(pool.Exit)) (mcp.Remote, error) {
	header := http.Header{}
	for name, value := range t.MCP.Headers {
		v, err := config.ExpandHeader(value, os.LookupEnv)
		if err != nil { // set when Load checked it, unset since
			return mcp.Remote{}, fmt.Errorf("%s: mcp.headers.%s: %w", id, name, err)
		}
		header.Set(name, v)
	}
	return mcp.Remote{ID: id, Protocol: t.Protocol, URL: t.MCP.URL, Header: header,
		OnEnd: func(err error) {
			exited(pool.Exit{Status: err.Error(), Failed: true, Cut: true, Session: true})
		}}, nil
}

// mcpRoots are the roots an mcp template offers, as file:// URIs named
// after their directories.
func mcpRoots(t *config.MCPTemplate) []mcp.Root {
	if t == nil {
		return nil
	}
	var roots []mcp.Root
	for _, path := range t.Roots {
		u := url.URL{Scheme: "file", Path: filepath.ToSlash(path)}
		roots = append(roots, mcp.Root{URI: u.String(), Name: filepath.Base(path)})
	}
	return roots
}
