package app

import (
	"net/http"
	"strings"

	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// taskIDHeader carries a task's id, in the answer to POST /v1/tasks and,
// if the client asks for it (earlyTaskID), in an early one.
const taskIDHeader = "Task-Id"

// earlyTaskID is the preference (RFC 7240) with which a client of POST
// /v1/tasks asks for the task's id while the task runs, which DELETE
// /v1/tasks/{id} needs: the final answer comes only when the task has
// ended.
const earlyTaskID = "early-task-id"

// announceTaskID sets the task's id in the answer's header, and sends it
// at once as a 103 Early Hints answer if the client asked for it. Only if
// asked: some clients (Python's http.client) take any 1xx answer but 100
// for the final one.
func announceTaskID(w http.ResponseWriter, r *http.Request) func(id string) {
	return func(id string) {
		w.Header().Set(taskIDHeader, id)
		if r.ProtoAtLeast(1, 1) && prefers(r, earlyTaskID) {
			w.Header().Set("Preference-Applied", earlyTaskID)
			w.WriteHeader(http.StatusEarlyHints)
		}
	}
}

// prefers reports whether the request's Prefer header names pref.
func prefers(r *http.Request, pref string) bool {
	for _, line := range r.Header.Values("Prefer") {
		for item := range strings.SplitSeq(line, ",") {
			name, _, _ := strings.Cut(item, ";")
			name, _, _ = strings.Cut(name, "=")
			if strings.EqualFold(strings.TrimSpace(name), pref) {
				return true
			}
		}
	}
	return false
}

// cancelTask cancels a running task: 202 with its record once it is
// answered as cancelled. It needs no admin token: the id is the
// capability, known only to the task's caller.
func (a *adminServer) cancelTask(w http.ResponseWriter, r *http.Request) {
	rec, err := a.engine.CancelTask(r.Context(), r.PathValue("id"))
	switch {
	case err == nil:
		writeJSON(w, http.StatusAccepted, rec)
	case rec.ID != "":
		writeJSON(w, statusOf(err), map[string]any{"error": lifecycle.Redact(err.Error()), "task": rec})
	default:
		writeError(w, statusOf(err), err)
	}
}
