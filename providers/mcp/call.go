package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sourcegraph/jsonrpc2"
	"go.uber.org/zap"
)

// cancelWait bounds the sending of notifications/cancelled, after the
// caller's context has ended.
const cancelWait = time.Second

// Call sends method with params, a JSON object or nothing, as a request
// and returns its result. A server's error is a *jsonrpc2.Error.
//
// If ctx ends before the answer, Call tells the server with
// notifications/cancelled, best effort, and returns ctx's error. A
// tools/call whose result says "isError": true returns the result and a
// [*ToolError]. Notifications go through [Client.Notify]; initialize
// through Initialize.
func (c *Client) Call(ctx context.Context, method string, params json.RawMessage) (json.RawMessage, error) {
	switch {
	case strings.HasPrefix(method, "notifications/"):
		return nil, fmt.Errorf("mcp %q: %s is a notification: use Notify", c.ID(), method)
	case method == "initialize":
		return nil, fmt.Errorf("mcp %q: initialize is Initialize's", c.ID())
	}
	if _, ok := c.Session(); !ok {
		return nil, fmt.Errorf("mcp %q: call %q: %w", c.ID(), method, ErrNotInitialized)
	}
	result, err := c.request(ctx, method, optional(params), true)
	if err != nil {
		return nil, err
	}
	if method == "tools/call" {
		if err := toolError(c.ID(), params, result); err != nil {
			return result, err
		}
	}
	return result, nil
}

// Notify sends method, which must be under "notifications/", with
// params, a JSON object or nothing, as a notification. It has no answer.
func (c *Client) Notify(ctx context.Context, method string, params json.RawMessage) error {
	switch {
	case !strings.HasPrefix(method, "notifications/"):
		return fmt.Errorf("mcp %q: %s is not a notification: use Call", c.ID(), method)
	case method == "notifications/initialized":
		return fmt.Errorf("mcp %q: notifications/initialized is Initialize's", c.ID())
	}
	if _, ok := c.Session(); !ok {
		return fmt.Errorf("mcp %q: notify %q: %w", c.ID(), method, ErrNotInitialized)
	}
	return c.proc.Notify(ctx, method, optional(params))
}

// request sends a request under an id of the client's own, so that it can
// name the request in notifications/cancelled if ctx ends first.
func (c *Client) request(ctx context.Context, method string, params any, cancellable bool) (json.RawMessage, error) {
	if err := ctx.Err(); err != nil { // not sent: nothing to cancel
		return nil, fmt.Errorf("mcp %q: call %q: %w", c.ID(), method, err)
	}
	id := jsonrpc2.ID{Num: c.ids.Add(1)} // from 1: some servers take an id of 0 for none
	var result json.RawMessage
	err := c.proc.Call(ctx, method, params, &result, jsonrpc2.PickID(id))
	if err != nil && cancellable && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		c.cancel(ctx, id, method)
	}
	return result, err
}

// cancel tells the server that the caller no longer waits for request id.
// It is best effort: the server may have answered already, and the answer,
// if it comes, is dropped. A failure is logged, not returned: the caller's
// error is its context's.
func (c *Client) cancel(ctx context.Context, id jsonrpc2.ID, method string) {
	nctx, stop := context.WithTimeout(context.WithoutCancel(ctx), cancelWait)
	defer stop()
	// The cause says who ended the call: its caller, its deadline, the
	// service's shutdown.
	params := map[string]any{"requestId": id, "reason": context.Cause(ctx).Error()}
	if err := c.proc.Notify(nctx, "notifications/cancelled", params); err != nil {
		c.log.Debug("cancellation not sent", zap.String("method", method), zap.Uint64("request_id", id.Num), zap.Error(err))
	}
}

// optional turns empty params into none, so that the request carries no
// "params" member rather than "params": null, which strict servers refuse.
func optional(params json.RawMessage) any {
	if len(params) == 0 {
		return nil
	}
	return params
}
