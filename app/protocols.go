package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/ollama/ollama/api"
	"github.com/sourcegraph/jsonrpc2"

	"github.com/gleitzeit/gleitzeit/internal/tracemeta"
	"github.com/gleitzeit/gleitzeit/providers/mcp"
	"github.com/gleitzeit/gleitzeit/providers/ollama"
	"github.com/gleitzeit/gleitzeit/providers/process"
)

var (
	// errBadRequest marks a task the caller got wrong: an unknown method,
	// or parameters that do not fit it (the provider's own 4xx included).
	errBadRequest = errors.New("bad request")
	// errNotFound: the provider has no such thing, such as a model: 404.
	errNotFound = errors.New("not found")
	// errUnavailable: the provider refuses work for now, such as an open
	// circuit breaker: 503, and worth a retry later.
	errUnavailable = errors.New("the provider is unavailable")
)

// handler runs one method of a protocol on one provider.
type handler func(ctx context.Context, method string, params json.RawMessage) (json.RawMessage, error)

// llmHandler serves llm/v1 with an Ollama provider: generate, chat, embed,
// models and version. Generation is asked for unstreamed, but for a task
// answered as a stream that asks for stream: true, whose chunks are its
// pieces; either way the answer is one JSON object.
func llmHandler(p *ollama.Provider) handler {
	h := llmMethods(p)
	return func(ctx context.Context, method string, params json.RawMessage) (json.RawMessage, error) {
		out, err := h(ctx, method, params)
		return out, llmError(err)
	}
}

// llmError sorts the provider's errors into the statuses they deserve:
// Ollama's own 4xx is the caller's mistake (404 for what does not exist),
// an open breaker is 503; the rest stays a failure of the provider.
func llmError(err error) error {
	var se api.StatusError
	switch {
	case err == nil, errors.Is(err, errBadRequest):
		return err
	case errors.Is(err, ollama.ErrUnavailable):
		return fmt.Errorf("%w: %w", errUnavailable, err)
	case errors.As(err, &se) && se.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%w: %w", errNotFound, err)
	case errors.As(err, &se) && se.StatusCode >= 400 && se.StatusCode < 500:
		return fmt.Errorf("%w: %w", errBadRequest, err)
	}
	return err
}

// llmRequest decodes an llm/v1 task's params for its method: the request
// to send, nil for a method without params, or the caller's mistake (an
// unknown method, params that do not fit it, stream: true). It needs no
// provider, so that what can never succeed is refused as such (400)
// whether or not an Ollama server is up, not answered "come back later".
func llmRequest(method string, params json.RawMessage, streamed bool) (any, error) {
	decode := func(v any) error {
		if len(params) == 0 {
			return fmt.Errorf("%w: %s needs params", errBadRequest, method)
		}
		dec := json.NewDecoder(strings.NewReader(string(params)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			return fmt.Errorf("%w: params of %s: %v", errBadRequest, method, err)
		}
		return nil
	}
	// A generation's stream: true is answered as Server-Sent Events, each
	// chunk as it comes; asked for without them, the answer would be one
	// object anyway, and the caller is told how to ask. Unasked, the
	// generation is asked for unstreamed.
	generation := func(req any, stream **bool) (any, error) {
		if err := decode(req); err != nil {
			return nil, err
		}
		switch {
		case *stream != nil && **stream && !streamed:
			return nil, fmt.Errorf("%w: params of %s: stream: true is answered as Server-Sent Events: send the header Accept: text/event-stream", errBadRequest, method)
		case *stream == nil || !**stream:
			unstreamed := false
			*stream = &unstreamed
		}
		return req, nil
	}
	switch method {
	case "generate":
		var req api.GenerateRequest
		return generation(&req, &req.Stream)
	case "chat":
		var req api.ChatRequest
		return generation(&req, &req.Stream)
	case "embed":
		var req api.EmbedRequest
		if err := decode(&req); err != nil {
			return nil, err
		}
		return &req, nil
	case "models", "version":
		return nil, nil
	}
	return nil, fmt.Errorf("%w: llm/v1 has no method %q (generate, chat, embed, models, version)", errBadRequest, method)
}

func llmMethods(p *ollama.Provider) handler {
	return func(ctx context.Context, method string, params json.RawMessage) (json.RawMessage, error) {
		piece := progressOf(ctx)
		req, err := llmRequest(method, params, piece != nil)
		if err != nil {
			return nil, err
		}
		// Streamed, each chunk is a piece as it comes, and the answer is
		// what an unstreamed call answers: the last chunk, with the text of
		// them all.
		send := func(v any) {
			if piece != nil {
				if b, err := json.Marshal(v); err == nil {
					piece(b)
				}
			}
		}
		switch req := req.(type) {
		case *api.GenerateRequest:
			var out api.GenerateResponse
			var text, thinking strings.Builder
			err := p.Generate(ctx, req, func(r api.GenerateResponse) error {
				send(r)
				text.WriteString(r.Response)
				thinking.WriteString(r.Thinking)
				out = r
				return nil
			})
			out.Response, out.Thinking = text.String(), thinking.String()
			return marshal(out, err)
		case *api.ChatRequest:
			var out api.ChatResponse
			var text, thinking strings.Builder
			var calls []api.ToolCall
			err := p.Chat(ctx, req, func(r api.ChatResponse) error {
				send(r)
				text.WriteString(r.Message.Content)
				thinking.WriteString(r.Message.Thinking)
				calls = append(calls, r.Message.ToolCalls...)
				out = r
				return nil
			})
			out.Message.Content, out.Message.Thinking, out.Message.ToolCalls = text.String(), thinking.String(), calls
			return marshal(out, err)
		case *api.EmbedRequest:
			return marshal(p.Embed(ctx, req))
		}
		if method == "models" {
			return marshal(p.List(ctx))
		}
		v, err := p.Version(ctx)
		return marshal(map[string]string{"version": v}, err)
	}
}

// rpcHandler serves a process provider's protocol: the method and params
// go to the child as a JSON-RPC call.
func rpcHandler(p *process.Process) handler {
	return func(ctx context.Context, method string, params json.RawMessage) (json.RawMessage, error) {
		var in any
		switch trimmed := bytes.TrimSpace(params); {
		case len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")):
		case trimmed[0] == '{' || trimmed[0] == '[':
			in = tracemeta.InjectJSON(ctx, params) // the caller's trace in _meta, as MCP has it
		default:
			// JSON-RPC 2.0 params are structured; a strict child drops
			// anything else without an answer, and the task would hang.
			return nil, fmt.Errorf("%w: params: JSON-RPC wants an object or an array, got %.40s", errBadRequest, trimmed)
		}
		var out json.RawMessage
		err := p.Call(ctx, method, in, &out)
		var rpcErr *jsonrpc2.Error
		if errors.As(err, &rpcErr) && (rpcErr.Code == jsonrpc2.CodeMethodNotFound || rpcErr.Code == jsonrpc2.CodeInvalidParams) {
			return nil, fmt.Errorf("%w: %w", errBadRequest, err)
		}
		return out, err
	}
}

// mcpHandler serves an MCP server's methods: each a request to it. A tool
// that reports an error (isError) fails the task, with its message, and
// its whole result is the task's output (see Engine.Run).
func mcpHandler(c *mcp.Client) handler {
	return func(ctx context.Context, method string, params json.RawMessage) (json.RawMessage, error) {
		if err := structured(params); err != nil {
			return nil, err
		}
		if err := mcpOwn(method); err != nil {
			return nil, err
		}
		if err := callerRequest(method, params); err != nil {
			return nil, err
		}
		call := func(ctx context.Context, params json.RawMessage) (json.RawMessage, error) {
			return c.Call(ctx, method, params)
		}
		out, whole, err := wholeList(ctx, call, method, params)
		switch piece := progressOf(ctx); {
		case whole: // a list, every page of it
		case piece != nil:
			// Answered as a stream: the server's progress on this call
			// is its pieces.
			out, err = c.CallWithProgress(ctx, method, params, piece)
		default:
			out, err = c.Call(ctx, method, params)
		}
		var rpcErr *jsonrpc.Error
		if errors.As(err, &rpcErr) && (rpcErr.Code == jsonrpc.CodeMethodNotFound || rpcErr.Code == jsonrpc.CodeInvalidParams) {
			return nil, fmt.Errorf("%w: %w", errBadRequest, err)
		}
		return out, err
	}
}

// mcpCheck is what mcpHandler refuses before it sends anything, for a
// check before an instance is chosen.
func mcpCheck(method string, params json.RawMessage) error {
	if err := structured(params); err != nil {
		return err
	}
	if err := mcpOwn(method); err != nil {
		return err
	}
	if strings.HasPrefix(method, "notifications/") {
		return callerNotification(method)
	}
	return callerRequest(method, params)
}

// mcpOwn refuses the methods of the handshake, which the provider's
// Initialize sends, once.
func mcpOwn(method string) error {
	if method == "initialize" || method == "notifications/initialized" {
		return fmt.Errorf("%w: %s is the session's handshake, which the service does at start", errBadRequest, method)
	}
	return nil
}

// structured refuses params that are not a JSON object or array: JSON-RPC
// 2.0 params are structured, and a strict server drops anything else
// without an answer, which would leave the task waiting.
func structured(params json.RawMessage) error {
	switch trimmed := bytes.TrimSpace(params); {
	case len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")), trimmed[0] == '{' || trimmed[0] == '[':
		return nil
	default:
		return fmt.Errorf("%w: params: JSON-RPC wants an object or an array, got %.40s", errBadRequest, trimmed)
	}
}

func marshal[T any](v T, err error) (json.RawMessage, error) {
	if err != nil {
		return nil, err
	}
	return json.Marshal(v)
}
