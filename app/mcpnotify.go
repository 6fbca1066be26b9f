package app

import (
	"encoding/json"
	"fmt"
	"strings"
)

// callerNotifications are the MCP notifications a task may send: those
// that name nothing of the session. Every caller of an instance shares its
// one session, so a notification that names a request (cancelled,
// progress) or a task (tasks/status) could reach another caller's work,
// and the handshake's is the service's own. A notification MCP adds later,
// or a server's own, is refused until it is known to name nothing.
var callerNotifications = map[string]bool{
	"notifications/roots/list_changed": true,
}

// callerNotification refuses a notification a task may not send, saying
// what to do instead.
func callerNotification(method string) error {
	switch {
	case callerNotifications[method]:
		return nil
	case method == "notifications/cancelled":
		return fmt.Errorf("%w: notifications/cancelled names a request of the MCP session that every caller of the instance shares: "+
			"cancel a task with DELETE /v1/tasks/{id}; POST /v1/tasks with the header Prefer: %s gives its id at once", errBadRequest, earlyTaskID)
	case method == "notifications/progress", method == "notifications/tasks/status":
		return fmt.Errorf("%w: %s names a request or a task of the MCP session that every caller of the instance shares: "+
			"only the service may send it", errBadRequest, method)
	}
	return fmt.Errorf("%w: %.64q is not a notification a task may send to an MCP session that every caller of the instance shares: "+
		"only notifications/roots/list_changed is", errBadRequest, method)
}

// callerRequest refuses an MCP request that reaches the session's tasks
// (MCP's tasks/get, tasks/list, tasks/result, tasks/cancel): their ids are
// the session's, which every caller shares, so tasks/list would show one
// caller the others' and tasks/cancel let it end them. A request that asks
// to run as such a task (a "task" member in its params) is refused too: its
// result could be fetched only with tasks/result. A task of the service is
// cancelled with DELETE /v1/tasks/{id}.
func callerRequest(method string, params json.RawMessage) error {
	if strings.HasPrefix(method, "tasks/") {
		return fmt.Errorf("%w: %.64q reaches the tasks of the MCP session that every caller of the instance shares: "+
			"cancel a task of the service with DELETE /v1/tasks/{id}", errBadRequest, method)
	}
	var p struct {
		Task json.RawMessage `json:"task"`
	}
	if json.Unmarshal(params, &p) == nil && p.Task != nil {
		return fmt.Errorf("%w: a request may not run as a task of the MCP session that every caller of the instance shares: "+
			"leave out params.task; the service's own task is the one to follow", errBadRequest)
	}
	return nil
}
