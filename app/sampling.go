package app

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/gleitzeit/gleitzeit/app/config"
	"github.com/gleitzeit/gleitzeit/providers/mcp"
)

// sampler answers an MCP server's sampling/createMessage with a chat on
// the service's own LLM pool: a task like any other, recorded, audited,
// bounded by task_timeout and counted, so that an operator sees what a
// server asked of the model. The model is the template's, whatever the
// server prefers.
func (e *Engine) sampler(s *config.MCPSampling) mcp.Sampler {
	return func(ctx context.Context, req mcp.SamplingRequest) (mcp.SamplingResult, error) {
		messages := make([]map[string]string, 0, len(req.Messages)+1)
		if req.SystemPrompt != "" {
			messages = append(messages, map[string]string{"role": "system", "content": req.SystemPrompt})
		}
		for _, m := range req.Messages {
			messages = append(messages, map[string]string{"role": m.Role, "content": m.Text})
		}
		options := map[string]any{}
		if req.MaxTokens > 0 {
			options["num_predict"] = req.MaxTokens
		}
		if req.Temperature != 0 {
			options["temperature"] = req.Temperature
		}
		if len(req.StopSequences) > 0 {
			options["stop"] = req.StopSequences
		}
		params, err := json.Marshal(map[string]any{"model": s.Model, "messages": messages, "options": options})
		if err != nil {
			return mcp.SamplingResult{}, err
		}
		rec, err := e.Run(ctx, Task{Protocol: s.Protocol, Method: "chat", Params: params})
		if err != nil {
			return mcp.SamplingResult{}, fmt.Errorf("sampling with %s on %s: %w", s.Model, s.Protocol, err)
		}
		var out struct {
			Model   string `json:"model"`
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
			DoneReason string `json:"done_reason"`
		}
		if err := json.Unmarshal(rec.Output, &out); err != nil {
			return mcp.SamplingResult{}, fmt.Errorf("sampling with %s on %s: the chat's answer: %w", s.Model, s.Protocol, err)
		}
		return mcp.SamplingResult{Model: out.Model, Text: out.Message.Content, StopReason: stopReason(out.DoneReason)}, nil
	}
}

// stopReason is MCP's word for why Ollama stopped: "stop" is the end of
// the model's turn, "length" its token limit; another is passed on.
func stopReason(doneReason string) string {
	switch doneReason {
	case "stop":
		return "endTurn"
	case "length":
		return "maxTokens"
	}
	return doneReason
}
