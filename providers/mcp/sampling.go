package mcp

//lint:file-ignore SA1019 roots, sampling and logging are deprecated from MCP 2026-07-28, which this client does not speak; the revisions it speaks have them, and servers use them.

import (
	"context"
	"fmt"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"go.uber.org/zap"

	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// Sampler answers a server's sampling/createMessage: a model's reply to
// the messages it sends. With one ([Config.Sampler]) the client declares
// sampling, and a server that hides what needs it (server-everything's
// trigger-sampling-request) shows it.
type Sampler func(ctx context.Context, req SamplingRequest) (SamplingResult, error)

// SamplingRequest is what a server asks a model, as text: MCP's
// sampling/createMessage, without its model preferences (the client
// chooses the model) and without images or audio, which are refused.
type SamplingRequest struct {
	SystemPrompt  string
	Messages      []SamplingMessage
	MaxTokens     int64
	Temperature   float64 // 0: the model's default
	StopSequences []string
}

// SamplingMessage is one message of a conversation: its role ("user" or
// "assistant") and its text.
type SamplingMessage struct {
	Role string
	Text string
}

// SamplingResult is the model's reply: the model that answered, its text,
// and why it stopped ("endTurn", "maxTokens", "stopSequence", or the
// model's own word).
type SamplingResult struct {
	Model      string
	Text       string
	StopReason string
}

// createMessage hands the server's request to the Sampler, as text.
func (c *Client) createMessage(ctx context.Context, req *sdk.CreateMessageRequest) (*sdk.CreateMessageResult, error) {
	p := req.Params
	in := SamplingRequest{SystemPrompt: p.SystemPrompt, MaxTokens: p.MaxTokens, Temperature: p.Temperature, StopSequences: p.StopSequences}
	for i, m := range p.Messages {
		text, ok := m.Content.(*sdk.TextContent)
		if !ok {
			c.log.Warn("sampling refused", zap.String("why", fmt.Sprintf("messages[%d] is not text", i)))
			return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("messages[%d]: this client samples text only", i)}
		}
		in.Messages = append(in.Messages, SamplingMessage{Role: string(m.Role), Text: text.Text})
	}
	out, err := c.cfg.Sampler(ctx, in)
	if err != nil {
		// The server is told that sampling failed, and no more: the
		// error names the service's own providers and addresses.
		c.log.Warn("sampling failed", zap.Error(lifecycle.RedactError(err)))
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "sampling failed: the client's model did not answer"}
	}
	return &sdk.CreateMessageResult{Role: "assistant", Model: out.Model, StopReason: out.StopReason,
		Content: &sdk.TextContent{Text: out.Text}}, nil
}
