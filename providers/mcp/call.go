package mcp

//lint:file-ignore SA1019 roots, sampling and logging are deprecated from MCP 2026-07-28, which this client does not speak; the revisions it speaks have them, and servers use them.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/trace"

	"github.com/gleitzeit/gleitzeit/internal/tracemeta"
	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// Call sends method with params, a JSON object or nothing, as a request
// and returns its result as JSON. The methods are those a client sends:
// ping, tools/list, tools/call, prompts/list, prompts/get, resources/list,
// resources/read, resources/templates/list, resources/subscribe,
// resources/unsubscribe, completion/complete and logging/setLevel; any
// other is refused with a *jsonrpc.Error (method not found), as are
// params that do not fit the method (invalid params). A server's error is
// a *jsonrpc.Error too.
//
// If ctx ends before the answer, the SDK tells the server with
// notifications/cancelled, best effort, and Call returns ctx's error. A
// tools/call whose result says "isError": true returns the result and a
// [*ToolError]. initialize is Initialize's.
func (c *Client) Call(ctx context.Context, method string, params json.RawMessage) (json.RawMessage, error) {
	switch {
	case strings.HasPrefix(method, "notifications/"):
		return nil, fmt.Errorf("mcp %q: %s is a notification, which the client sends itself", c.id, method)
	case method == "initialize":
		return nil, fmt.Errorf("mcp %q: initialize is Initialize's", c.id)
	}
	cs, _ := c.live()
	if cs == nil {
		return nil, fmt.Errorf("mcp %q: call %q: %w", c.id, method, ErrNotInitialized)
	}
	if err := ctx.Err(); err != nil { // not sent: nothing to cancel
		return nil, fmt.Errorf("mcp %q: call %q: %w", c.id, method, err)
	}
	send, ok := requests[method]
	if !ok {
		return nil, fmt.Errorf("mcp %q: %w", c.id, &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound,
			Message: fmt.Sprintf("%.64q is not a request an MCP client sends", method)})
	}
	end := c.begin(ctx)
	callCtx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(c.calls, cancel) // Cleanup ends it
	result, err := send(callCtx, cs, params)
	stop()
	cancel()
	end()
	if err != nil {
		return nil, c.callError(ctx, method, err)
	}
	if method == "tools/call" {
		if err := toolError(c.id, params, result); err != nil {
			return result, err
		}
	}
	return result, nil
}

// begin counts a call in flight: the child's, or the remote session's.
func (c *Client) begin(ctx context.Context) (end func()) {
	if c.proc != nil {
		return c.proc.Begin(ctx)
	}
	c.inflight.Add(1)
	return func() { c.inflight.Add(-1) }
}

// request sends one method through the SDK: params decoded into its type,
// the result encoded back.
type request func(ctx context.Context, cs *sdk.ClientSession, params json.RawMessage) (json.RawMessage, error)

// requests are the methods a client sends, each through the SDK's own.
var requests = map[string]request{
	"ping": typed(func(cs *sdk.ClientSession) func(context.Context, *sdk.PingParams) (struct{}, error) {
		return noResult(cs.Ping)
	}),
	"tools/list": typed(func(cs *sdk.ClientSession) func(context.Context, *sdk.ListToolsParams) (*sdk.ListToolsResult, error) {
		return cs.ListTools
	}),
	"tools/call": typed(func(cs *sdk.ClientSession) func(context.Context, *sdk.CallToolParams) (*sdk.CallToolResult, error) {
		return cs.CallTool
	}),
	"prompts/list": typed(func(cs *sdk.ClientSession) func(context.Context, *sdk.ListPromptsParams) (*sdk.ListPromptsResult, error) {
		return cs.ListPrompts
	}),
	"prompts/get": typed(func(cs *sdk.ClientSession) func(context.Context, *sdk.GetPromptParams) (*sdk.GetPromptResult, error) {
		return cs.GetPrompt
	}),
	"resources/list": typed(func(cs *sdk.ClientSession) func(context.Context, *sdk.ListResourcesParams) (*sdk.ListResourcesResult, error) {
		return cs.ListResources
	}),
	"resources/read": typed(func(cs *sdk.ClientSession) func(context.Context, *sdk.ReadResourceParams) (*sdk.ReadResourceResult, error) {
		return cs.ReadResource
	}),
	"resources/templates/list": typed(func(cs *sdk.ClientSession) func(context.Context, *sdk.ListResourceTemplatesParams) (*sdk.ListResourceTemplatesResult, error) {
		return cs.ListResourceTemplates
	}),
	"resources/subscribe": typed(func(cs *sdk.ClientSession) func(context.Context, *sdk.SubscribeParams) (struct{}, error) {
		return noResult(cs.Subscribe)
	}),
	"resources/unsubscribe": typed(func(cs *sdk.ClientSession) func(context.Context, *sdk.UnsubscribeParams) (struct{}, error) {
		return noResult(cs.Unsubscribe)
	}),
	"completion/complete": typed(func(cs *sdk.ClientSession) func(context.Context, *sdk.CompleteParams) (*sdk.CompleteResult, error) {
		return cs.Complete
	}),
	"logging/setLevel": typed(func(cs *sdk.ClientSession) func(context.Context, *sdk.SetLoggingLevelParams) (struct{}, error) {
		return noResult(cs.SetLoggingLevel)
	}),
}

// typed makes a request of one of the session's methods, which method
// picks out of the session.
func typed[P, R any](method func(*sdk.ClientSession) func(context.Context, *P) (R, error)) request {
	return func(ctx context.Context, cs *sdk.ClientSession, raw json.RawMessage) (json.RawMessage, error) {
		params := new(P)
		if len(raw) > 0 && string(raw) != "null" {
			if err := json.Unmarshal(raw, params); err != nil {
				return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "params: " + err.Error()}
			}
		}
		if p, ok := any(params).(sdk.Params); ok && trace.SpanContextFromContext(ctx).IsValid() {
			// MCP's convention: the caller's trace in params._meta.
			p.SetMeta(tracemeta.Inject(ctx, p.GetMeta()))
		}
		result, err := method(cs)(ctx, params)
		if err != nil {
			return nil, err
		}
		return json.Marshal(result)
	}
}

// noResult is a method that answers nothing but success, as one whose
// result is an empty object.
func noResult[P any](f func(context.Context, *P) error) func(context.Context, *P) (struct{}, error) {
	return func(ctx context.Context, p *P) (struct{}, error) { return struct{}{}, f(ctx, p) }
}

// sessionEndWait bounds how long a remote call that failed in its
// transport waits for the session to end with it: the SDK fails the
// connection before the call, and the session's end follows in a moment;
// a failure that does not end the session is the call's own.
const sessionEndWait = time.Second

// callError is the error of a call that failed: the child's exit or the
// session's end if that is why, as the caller can tell it apart from the
// server's own answer, or from the end of the call's context. Cleanup's
// ending of the calls in flight is the session's end.
func (c *Client) callError(ctx context.Context, method string, err error) error {
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return fmt.Errorf("mcp %q: call %q: %w", c.id, method, err)
	}
	if c.proc != nil {
		if !c.proc.Running() || errors.Is(err, sdk.ErrConnectionClosed) || c.calls.Err() != nil {
			return fmt.Errorf("mcp %q: call %q: %w", c.id, method, c.proc.Closed(ctx))
		}
		return fmt.Errorf("mcp %q: call %q: %w", c.id, method, lifecycle.RedactError(err))
	}
	var rpcErr *jsonrpc.Error
	if !errors.As(err, &rpcErr) && c.calls.Err() == nil {
		timer := time.NewTimer(sessionEndWait)
		defer timer.Stop()
		select {
		case <-c.ended:
		case <-timer.C:
		}
	}
	if _, live := c.live(); !live {
		return fmt.Errorf("mcp %q: call %q: %w", c.id, method, c.sessionEnded())
	}
	return fmt.Errorf("mcp %q: call %q: %w", c.id, method, c.scrub(err))
}
