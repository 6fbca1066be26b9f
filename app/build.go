package app

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/gleitzeit/gleitzeit/app/pool"
	"github.com/gleitzeit/gleitzeit/lifecycle"
	"github.com/gleitzeit/gleitzeit/providers/ollama"
	"github.com/gleitzeit/gleitzeit/providers/process"
)

// endpoint is how tasks reach one instance: its protocol's methods, and,
// for a protocol that has them, its notifications.
type endpoint struct {
	call handler
	// notify sends a method under notifications/ without waiting for an
	// answer; nil where the protocol has no notifications.
	notify func(ctx context.Context, method string, params json.RawMessage) error
}

// build makes, without starting it, the provider of an instance of a
// template; exited is told when its child exits.
func (e *Engine) build(id string, t Template, exited func(pool.Exit)) (lifecycle.Provider, endpoint, error) {
	p, ep, err := e.buildKind(id, t, exited)
	if err == nil && e.endpointHook != nil {
		ep = e.endpointHook(ep)
	}
	return p, ep, err
}

func (e *Engine) buildKind(id string, t Template, exited func(pool.Exit)) (lifecycle.Provider, endpoint, error) {
	switch t.Kind {
	case "ollama":
		p, err := ollama.New(ollama.Config{ID: id, URL: t.Ollama.URL, Protocol: t.Protocol})
		if err != nil {
			return nil, endpoint{}, err
		}
		return p, endpoint{call: llmHandler(p)}, nil
	case "process":
		cfg, _ := e.processConfig(id, t, exited)
		p, err := process.New(cfg)
		if err != nil {
			return nil, endpoint{}, err
		}
		return p, endpoint{call: rpcHandler(p)}, nil
	}
	return nil, endpoint{}, fmt.Errorf("template kind %q", t.Kind)
}

// processConfig is the child of a process or mcp template, its stderr
// logged a line at a time.
func (e *Engine) processConfig(id string, t Template, exited func(pool.Exit)) (process.Config, *childStderr) {
	grace, _ := time.ParseDuration(t.Process.Grace) // checked by Load
	log := e.log.With(zap.String("provider", id))
	stderr := newChildStderr(e.log, id)
	return process.Config{ID: id, Command: t.Process.Command, Dir: t.Process.Dir,
		Env: t.Process.Env, InheritEnv: t.Process.InheritEnv, Protocol: t.Protocol,
		Stderr: stderr,
		OnOutputError: func(err error) {
			log.Error("child process output is not JSON-RPC: it cannot be used", zap.String("error", lifecycle.Redact(err.Error())))
		}, Grace: grace, ReadyMethod: t.Process.ReadyMethod, HealthMethod: t.Process.HealthMethod}, stderr
}
