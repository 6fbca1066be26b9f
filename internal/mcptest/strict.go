package mcptest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/sourcegraph/jsonrpc2"

	"github.com/gleitzeit/gleitzeit/internal/rpctest"
)

const (
	strictEnv  = "GLEITZEIT_MCP_STRICT"
	versionEnv = "GLEITZEIT_MCP_STRICT_VERSION"
)

// StrictInfo is the strict server's serverInfo.
var StrictInfo = map[string]string{"name": "gleitzeit-strict", "version": "1.2.3"}

// Strict returns the command line and the environment that run this test
// binary as the strict server. It answers initialize with the protocol
// version the client asks for.
func Strict() (argv, env []string) { return StrictAnswering("") }

// StrictAnswering is [Strict], answering initialize with version whatever
// the client asks for: a server that speaks another version.
func StrictAnswering(version string) (argv, env []string) {
	env = []string{strictEnv + "=1", rpctest.NoRaceExitSleep()}
	if version != "" {
		env = append(env, versionEnv+"="+version)
	}
	return []string{os.Args[0], "-test.run=^$"}, env
}

// Seen is what the strict server saw, as its tool "seen" answers it.
type Seen struct {
	// Violations of the lifecycle and of initialize's rules, in order.
	Violations []string `json:"violations"`
	// Slow holds the ids of the calls of the tool "slow", as JSON.
	Slow []json.RawMessage `json:"slow"`
	// Cancelled holds the requestIds of the notifications/cancelled it
	// got, as JSON, and Reasons their reasons.
	Cancelled []json.RawMessage `json:"cancelled"`
	Reasons   []string          `json:"reasons"`
	// Notified holds the methods of the client's other notifications.
	Notified []string `json:"notified"`
	// Initialize is the initialize request's params.
	Initialize json.RawMessage `json:"initialize"`
	// Traceparents holds the params._meta.traceparent of each tools/call
	// that had one, in order: the trace a client carried to the server.
	Traceparents []string `json:"traceparents"`
}

// Serve runs the strict server, and exits, if this process was started as
// one; otherwise it returns at once. Call it first in TestMain.
func Serve() {
	if os.Getenv(strictEnv) == "" {
		return
	}
	s := &strict{version: os.Getenv(versionEnv), slow: map[string]chan struct{}{}}
	conn := jsonrpc2.NewConn(context.Background(), jsonrpc2.NewPlainObjectStream(stdio{}), s)
	<-conn.DisconnectNotify() // the end of stdin: MCP's stdio shutdown
	os.Exit(0)
}

type phase int

const (
	waiting     phase = iota // for initialize
	answered                 // initialize, and waits for notifications/initialized
	initialized              // in operation
)

// strict handles the client's messages on the goroutine that reads them,
// in order, so that its view of the lifecycle is the order of the wire;
// only what waits (slow, ask) goes on a goroutine of its own.
type strict struct {
	version string // answered to initialize; the client's if empty

	mu    sync.Mutex // guards the fields below
	phase phase
	seen  Seen
	slow  map[string]chan struct{} // by request id: closed by its cancellation
}

func (s *strict) Handle(ctx context.Context, conn *jsonrpc2.Conn, req *jsonrpc2.Request) {
	if req.Notif {
		s.notification(req)
		return
	}
	if err := s.admit(req.Method); err != nil {
		_ = conn.ReplyWithError(ctx, req.ID, err)
		return
	}
	var result any
	var err error
	switch req.Method {
	case "initialize":
		result = s.initialize(params(req))
	case "ping":
		result = struct{}{}
	case "tools/call":
		var m struct {
			Meta struct {
				Traceparent string `json:"traceparent"`
			} `json:"_meta"`
		}
		if json.Unmarshal(params(req), &m) == nil && m.Meta.Traceparent != "" {
			s.mu.Lock()
			s.seen.Traceparents = append(s.seen.Traceparents, m.Meta.Traceparent)
			s.mu.Unlock()
		}
		result, err = s.callTool(ctx, conn, req)
		if result == nil && err == nil {
			return // answered later, or never
		}
	case "tools/list":
		result, err = listTools(params(req))
	default:
		err = &jsonrpc2.Error{Code: jsonrpc2.CodeMethodNotFound, Message: fmt.Sprintf("no method %q", req.Method)}
	}
	reply(ctx, conn, req.ID, result, err)
}

func reply(ctx context.Context, conn *jsonrpc2.Conn, id jsonrpc2.ID, result any, err error) {
	var rpcErr *jsonrpc2.Error
	switch {
	case errors.As(err, &rpcErr):
		_ = conn.ReplyWithError(ctx, id, rpcErr)
	case err != nil:
		_ = conn.ReplyWithError(ctx, id, &jsonrpc2.Error{Code: jsonrpc2.CodeInternalError, Message: err.Error()})
	default:
		_ = conn.Reply(ctx, id, result)
	}
}

// admit refuses, and records, a request out of the lifecycle's order.
func (s *strict) admit(method string) *jsonrpc2.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var violation string
	switch {
	case method == "initialize" && s.phase != waiting:
		violation = "initialize sent again"
	case method != "initialize" && s.phase != initialized:
		violation = fmt.Sprintf("request %s before notifications/initialized", method)
	default:
		return nil
	}
	s.seen.Violations = append(s.seen.Violations, violation)
	return &jsonrpc2.Error{Code: jsonrpc2.CodeInvalidRequest, Message: "strict server: " + violation}
}

func (s *strict) notification(req *jsonrpc2.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case req.Method == "notifications/initialized" && s.phase == answered:
		s.phase = initialized
	case req.Method == "notifications/initialized":
		s.seen.Violations = append(s.seen.Violations, "notifications/initialized out of turn")
	case s.phase != initialized:
		s.seen.Violations = append(s.seen.Violations, fmt.Sprintf("notification %s before notifications/initialized", req.Method))
	case req.Method == "notifications/cancelled":
		var p struct {
			RequestID json.RawMessage `json:"requestId"`
			Reason    string          `json:"reason"`
		}
		_ = json.Unmarshal(params(req), &p)
		s.seen.Cancelled = append(s.seen.Cancelled, p.RequestID)
		s.seen.Reasons = append(s.seen.Reasons, p.Reason)
		if ch, ok := s.slow[string(p.RequestID)]; ok {
			close(ch)
			delete(s.slow, string(p.RequestID))
		}
	default:
		s.seen.Notified = append(s.seen.Notified, req.Method)
	}
}

// initialize checks what the client offers and answers.
func (s *strict) initialize(raw json.RawMessage) any {
	var p struct {
		ProtocolVersion string                     `json:"protocolVersion"`
		Capabilities    map[string]json.RawMessage `json:"capabilities"`
		ClientInfo      struct {
			Name    string `json:"name"`
			Version string `json:"version"`
		} `json:"clientInfo"`
	}
	err := json.Unmarshal(raw, &p)
	s.mu.Lock()
	defer s.mu.Unlock()
	violate := func(v string) { s.seen.Violations = append(s.seen.Violations, "initialize: "+v) }
	switch {
	case err != nil:
		violate("params: " + err.Error())
	case p.ProtocolVersion == "":
		violate("no protocolVersion")
	case p.Capabilities == nil:
		violate("no capabilities object")
	case p.ClientInfo.Name == "" || p.ClientInfo.Version == "":
		violate("clientInfo needs a name and a version")
	}
	for _, c := range []string{"roots", "sampling", "elicitation"} {
		if _, ok := p.Capabilities[c]; ok {
			violate("offers " + c)
		}
	}
	s.seen.Initialize = raw
	s.phase = answered
	version := s.version
	if version == "" {
		version = p.ProtocolVersion
	}
	return map[string]any{
		"protocolVersion": version,
		"capabilities":    map[string]any{"tools": map[string]any{}, "logging": map[string]any{}},
		"serverInfo":      StrictInfo,
		"instructions":    "Call the tools; ask seen what was seen.",
	}
}

// StrictTools are the strict server's tools, in the order tools/list
// gives them, StrictPageSize a page: it pages its list, as MCP allows and
// the reference server does not, so that a client can be seen to follow
// nextCursor.
var StrictTools = []string{"echo", "fail", "slow", "ask", "notify", "seen", "garble"}

// StrictPageSize is how many tools a page of tools/list holds.
const StrictPageSize = 2

// listTools answers a page of tools/list: from its cursor, an opaque
// string that is the index of the page's first tool.
func listTools(raw json.RawMessage) (any, error) {
	var p struct {
		Cursor *string `json:"cursor"`
	}
	_ = json.Unmarshal(raw, &p)
	from := 0
	if p.Cursor != nil {
		n, err := strconv.Atoi(*p.Cursor)
		if err != nil || n < 0 || n >= len(StrictTools) {
			return nil, &jsonrpc2.Error{Code: jsonrpc2.CodeInvalidParams, Message: fmt.Sprintf("no such cursor %q", *p.Cursor)}
		}
		from = n
	}
	to := min(from+StrictPageSize, len(StrictTools))
	tools := []map[string]any{}
	for _, name := range StrictTools[from:to] {
		tools = append(tools, map[string]any{"name": name, "inputSchema": map[string]any{"type": "object"}})
	}
	result := map[string]any{"tools": tools}
	if to < len(StrictTools) {
		result["nextCursor"] = strconv.Itoa(to)
	}
	return result, nil
}

// callTool answers a tools/call now, or returns nil, nil for a call it
// answers later, or never.
func (s *strict) callTool(ctx context.Context, conn *jsonrpc2.Conn, req *jsonrpc2.Request) (any, error) {
	var call struct {
		Name      string `json:"name"`
		Arguments struct {
			Message string          `json:"message"`
			Text    string          `json:"text"`
			Method  string          `json:"method"`
			Params  json.RawMessage `json:"params"`
		} `json:"arguments"`
	}
	if err := json.Unmarshal(params(req), &call); err != nil {
		return nil, &jsonrpc2.Error{Code: jsonrpc2.CodeInvalidParams, Message: err.Error()}
	}
	args := call.Arguments
	switch call.Name {
	case "echo":
		return text(args.Message, false), nil
	case "fail":
		return text(args.Text, true), nil
	case "slow":
		id, _ := json.Marshal(req.ID)
		cancelled := make(chan struct{})
		s.mu.Lock()
		s.slow[string(id)] = cancelled
		s.seen.Slow = append(s.seen.Slow, id)
		s.mu.Unlock()
		go func() {
			select {
			case <-cancelled: // a cancelled request gets no answer
			case <-time.After(time.Minute):
				reply(ctx, conn, req.ID, text("slow: never cancelled", true), nil)
			}
		}()
		return nil, nil
	case "ask":
		go func() {
			var result json.RawMessage
			err := conn.Call(ctx, args.Method, map[string]any{}, &result)
			answer := map[string]any{"result": result}
			if rpcErr := (*jsonrpc2.Error)(nil); errors.As(err, &rpcErr) {
				answer = map[string]any{"error": map[string]any{"code": rpcErr.Code, "message": rpcErr.Message}}
			} else if err != nil {
				answer = map[string]any{"error": map[string]any{"message": err.Error()}}
			}
			b, _ := json.Marshal(answer)
			reply(ctx, conn, req.ID, text(string(b), false), nil)
		}()
		return nil, nil
	case "notify":
		var p any
		if len(args.Params) > 0 {
			p = args.Params
		}
		if err := conn.Notify(ctx, args.Method, p); err != nil {
			return nil, err
		}
		return text("sent", false), nil
	case "garble":
		// A line that is not JSON-RPC, as a print left in would write,
		// and no answer.
		_, _ = os.Stdout.WriteString("this is not JSON\n")
		return nil, nil
	case "seen":
		s.mu.Lock()
		b, _ := json.Marshal(s.seen)
		s.mu.Unlock()
		return map[string]any{"content": []any{map[string]any{"type": "text", "text": string(b)}}, "structuredContent": json.RawMessage(b)}, nil
	}
	return nil, &jsonrpc2.Error{Code: jsonrpc2.CodeInvalidParams, Message: fmt.Sprintf("no tool %q", call.Name)}
}

func text(s string, isError bool) map[string]any {
	result := map[string]any{"content": []any{map[string]any{"type": "text", "text": s}}}
	if isError {
		result["isError"] = true
	}
	return result
}

func params(req *jsonrpc2.Request) json.RawMessage {
	if req.Params == nil {
		return nil
	}
	return *req.Params
}

type stdio struct{}

func (stdio) Read(b []byte) (int, error)  { return os.Stdin.Read(b) }
func (stdio) Write(b []byte) (int, error) { return os.Stdout.Write(b) }
func (stdio) Close() error                { return os.Stdin.Close() }
