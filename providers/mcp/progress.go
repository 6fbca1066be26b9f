package mcp

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
)

// progressBuffer bounds the progress notifications of one call that wait
// for its caller: past it, the newest are dropped rather than hold up the
// SDK's goroutine that handles the server's notifications for every
// caller.
const progressBuffer = 256

// progressRoutes hands the server's notifications/progress to the call
// whose progress token they name.
type progressRoutes struct {
	mu      sync.Mutex // guards next and byToken
	next    uint64
	byToken map[string]chan json.RawMessage
}

// add opens a route for one call: its token, and the channel its
// notifications arrive on.
func (r *progressRoutes) add() (string, chan json.RawMessage) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byToken == nil {
		r.byToken = map[string]chan json.RawMessage{}
	}
	r.next++
	token := "gleitzeit-" + strconv.FormatUint(r.next, 10)
	ch := make(chan json.RawMessage, progressBuffer)
	r.byToken[token] = ch
	return token, ch
}

// remove closes a call's route. Nothing is sent on ch afterwards.
func (r *progressRoutes) remove(token string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.byToken, token)
}

// route hands a notification to the call it names, without waiting: the
// SDK's handler of the server's notifications must not wait for any
// caller.
func (r *progressRoutes) route(params json.RawMessage) {
	var p struct {
		Token json.RawMessage `json:"progressToken"`
	}
	var token string
	if json.Unmarshal(params, &p) != nil || json.Unmarshal(p.Token, &token) != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if ch, ok := r.byToken[token]; ok {
		select {
		case ch <- params:
		default: // its caller is this far behind: it misses this one
		}
	}
}

// CallWithProgress is [Client.Call] that asks the server for progress and
// hands each notifications/progress of this call to onProgress (its
// params), in order, from a goroutine of its own, and none after it
// returns. The SDK reads the answer on one goroutine and handles
// notifications on another: a notification that came just before the
// answer may be handled after it, and is then not handed over. The result
// holds the answer all the same. The progress token is the client's own;
// params must not carry one.
func (c *Client) CallWithProgress(ctx context.Context, method string, params json.RawMessage, onProgress func(json.RawMessage)) (json.RawMessage, error) {
	token, ch := c.routes.add()
	withToken, err := setProgressToken(params, token)
	if err != nil {
		c.routes.remove(token)
		return nil, fmt.Errorf("mcp %q: call %q: %w", c.ID(), method, err)
	}
	done := make(chan struct{})
	forwarded := make(chan struct{})
	go func() {
		defer close(forwarded)
		for {
			select {
			case p := <-ch:
				onProgress(p)
			case <-done:
				for { // what came before the answer, still buffered
					select {
					case p := <-ch:
						onProgress(p)
					default:
						return
					}
				}
			}
		}
	}()
	result, err := c.Call(ctx, method, withToken)
	c.routes.remove(token)
	close(done)
	<-forwarded
	return result, err
}

// setProgressToken puts token in params._meta.progressToken.
func setProgressToken(params json.RawMessage, token string) (json.RawMessage, error) {
	p := map[string]json.RawMessage{}
	if len(params) > 0 && string(params) != "null" {
		if err := json.Unmarshal(params, &p); err != nil {
			return nil, fmt.Errorf("params are not a JSON object: %w", err)
		}
	}
	meta := map[string]json.RawMessage{}
	if raw, ok := p["_meta"]; ok {
		if err := json.Unmarshal(raw, &meta); err != nil {
			return nil, fmt.Errorf("params._meta is not a JSON object: %w", err)
		}
	}
	if _, ok := meta["progressToken"]; ok {
		return nil, fmt.Errorf("params._meta.progressToken is set: the client chooses the token")
	}
	meta["progressToken"], _ = json.Marshal(token)
	p["_meta"], _ = json.Marshal(meta)
	return json.Marshal(p)
}
