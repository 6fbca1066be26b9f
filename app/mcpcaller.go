package app

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// callerNotification refuses a notification a task names, saying what to
// do instead. Every caller of an instance shares its one session, whose
// notifications are the service's client's to send: one that names a
// request (cancelled, progress) or a task (tasks/status) could reach
// another caller's work, and roots/list_changed would announce roots that
// the template fixes.
func callerNotification(method string) error {
	switch {
	case method == "notifications/cancelled":
		return fmt.Errorf("%w: notifications/cancelled names a request of the MCP session that every caller of the instance shares: "+
			"cancel a task with DELETE /v1/tasks/{id}; POST /v1/tasks with the header Prefer: %s gives its id at once", errBadRequest, earlyTaskID)
	case method == "notifications/progress", method == "notifications/tasks/status":
		return fmt.Errorf("%w: %s names a request or a task of the MCP session that every caller of the instance shares: "+
			"only the service may send it", errBadRequest, method)
	}
	return fmt.Errorf("%w: %.64q is not a notification a task may send to an MCP session that every caller of the instance shares: "+
		"the service sends the session's notifications itself", errBadRequest, method)
}

// sessionMethods are MCP requests that change the session every caller
// of the instance shares: one caller's logging level or subscriptions
// would be every caller's.
var sessionMethods = map[string]bool{
	"logging/setLevel":      true,
	"resources/subscribe":   true,
	"resources/unsubscribe": true,
}

// sessionMeta are the members of a request's params._meta that name
// something of the session: a progress token is the client's to choose
// and match, and a related task is one of the session's tasks.
var sessionMeta = []string{"progressToken", "io.modelcontextprotocol/related-task"}

// callerRequest refuses an MCP request a caller may not send on the one
// session every caller of the instance shares:
//   - one that reaches the session's tasks (MCP's tasks/get, tasks/list,
//     tasks/result, tasks/cancel): tasks/list would show one caller the
//     others' and tasks/cancel let it end them. A task of the service is
//     cancelled with DELETE /v1/tasks/{id};
//   - one that asks to run as such a task (params.task), whose result could
//     be fetched only with tasks/result, or names one in params._meta;
//   - one that changes the session (sessionMethods);
//   - params that are not an object: MCP's are, and a server may leave
//     anything else unanswered, holding the instance until the timeout.
func callerRequest(method string, params json.RawMessage) error {
	const shared = "the MCP session that every caller of the instance shares"
	switch {
	case strings.HasPrefix(method, "tasks/"):
		return fmt.Errorf("%w: %.64q reaches the tasks of %s: "+
			"cancel a task of the service with DELETE /v1/tasks/{id}", errBadRequest, method, shared)
	case sessionMethods[method]:
		return fmt.Errorf("%w: %s would change %s for every caller", errBadRequest, method, shared)
	}
	if len(bytes.TrimSpace(params)) == 0 || bytes.Equal(bytes.TrimSpace(params), []byte("null")) {
		return checkShape(method, nil)
	}
	var p struct {
		Task json.RawMessage            `json:"task"`
		Meta map[string]json.RawMessage `json:"_meta"`
	}
	if err := json.Unmarshal(params, &p); err != nil {
		return fmt.Errorf("%w: MCP params are a JSON object", errBadRequest)
	}
	if p.Task != nil {
		return fmt.Errorf("%w: a request may not run as a task of %s: "+
			"leave out params.task; the service's own task is the one to follow", errBadRequest, shared)
	}
	for _, k := range sessionMeta {
		if _, ok := p.Meta[k]; ok {
			return fmt.Errorf("%w: params._meta.%s names something of %s: it is the service's to set", errBadRequest, k, shared)
		}
	}
	return checkShape(method, params)
}

// required are the params members MCP's requests cannot go without, and
// the JSON type of each. A server may report such a request as its own
// internal error (the reference server does: -32603), which would be
// answered 502 and logged as a failure of the provider: it is the
// caller's mistake, refused before it is sent.
var required = map[string][]struct{ name, kind string }{
	"tools/call":          {{"name", "string"}, {"arguments", "object?"}},
	"prompts/get":         {{"name", "string"}, {"arguments", "object?"}},
	"resources/read":      {{"uri", "string"}},
	"completion/complete": {{"ref", "object"}, {"argument", "object"}},
}

// checkShape refuses params that lack what the method requires, or hold
// it as another JSON type. params is an object, or empty.
func checkShape(method string, params json.RawMessage) error {
	fields := required[method]
	if fields == nil {
		return nil
	}
	var p map[string]json.RawMessage
	_ = json.Unmarshal(params, &p) // an object, checked by the caller; empty is nil
	for _, f := range fields {
		kind, optional := strings.CutSuffix(f.kind, "?")
		v, ok := p[f.name]
		if !ok {
			if optional {
				continue
			}
			return fmt.Errorf("%w: %s needs params.%s, a JSON %s", errBadRequest, method, f.name, kind)
		}
		if got := jsonKind(v); got != kind {
			return fmt.Errorf("%w: params.%s of %s is a JSON %s, not a %s", errBadRequest, f.name, method, got, kind)
		}
	}
	return nil
}

// jsonKind names the JSON type of a value.
func jsonKind(v json.RawMessage) string {
	switch t := bytes.TrimSpace(v); {
	case len(t) == 0:
		return "nothing"
	case t[0] == '"':
		return "string"
	case t[0] == '{':
		return "object"
	case t[0] == '[':
		return "array"
	case bytes.Equal(t, []byte("null")):
		return "null"
	case bytes.Equal(t, []byte("true")), bytes.Equal(t, []byte("false")):
		return "boolean"
	}
	return "number"
}
