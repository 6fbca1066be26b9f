package app

import (
	"net/http"

	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// taskIDHeader carries a task's id, in the early answer to POST /v1/tasks
// and in its final one.
const taskIDHeader = "Task-Id"

// announceTaskID sends the task's id, which DELETE /v1/tasks/{id} needs
// while the task runs, as a 103 Early Hints answer: the final answer
// comes only when the task has ended, and carries the header again. An
// HTTP/1.0 client, which cannot read a 1xx answer, gets it only then.
func announceTaskID(w http.ResponseWriter, r *http.Request) func(id string) {
	return func(id string) {
		w.Header().Set(taskIDHeader, id)
		if r.ProtoAtLeast(1, 1) {
			w.WriteHeader(http.StatusEarlyHints)
		}
	}
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
