package app

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
)

// tasksGuard guards the task endpoints with task_token, when one is
// configured: without it, or with another, the answer is 401 and nothing
// is read of the body, so a client without the token costs no record and
// no provider. With no token configured they are open, as before there
// was one. The token is not the admin token: a client that runs tasks
// cannot change the providers.
func (a *adminServer) tasksGuard(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.settings.TaskToken != "" && !hasBearer(r, a.settings.TaskToken) {
			if r.Method == http.MethodPost { // a task refused; a lookup is not one
				a.metrics.refuse(refusedUnauthorized)
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="gleitzeit-tasks"`)
			writeError(w, http.StatusUnauthorized, errors.New("this endpoint needs the task token in the Authorization header"))
			return
		}
		next(w, r)
	}
}

// hasBearer reports whether r carries want as its bearer token, compared
// in constant time.
func hasBearer(r *http.Request, want string) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}
