package app

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/gleitzeit/gleitzeit/app/config"
	"github.com/gleitzeit/gleitzeit/app/pool"
	"github.com/gleitzeit/gleitzeit/app/taskstore"
	"github.com/gleitzeit/gleitzeit/lifecycle"
	"github.com/gleitzeit/gleitzeit/providers/mcp"
)

// maxBody bounds a request's body.
const maxBody = 1 << 20

// adminServer is the HTTP server: probes, the provider admin API, tasks
// and metrics.
type adminServer struct {
	engine   *Engine
	settings *config.Settings
	metrics  *Metrics
	log      *zap.Logger
	srv      *http.Server
	served   chan error // Serve's result, once the listener is closed
	addr     net.Addr
	port     *adminPort // the admin API's own listener (adminport.go); nil without admin_addr
}

func newAdmin(lc fx.Lifecycle, e *Engine, s *config.Settings, m *Metrics, log *zap.Logger) *adminServer {
	a := &adminServer{engine: e, settings: s, metrics: m, log: log.Named("admin")}
	a.srv = &http.Server{
		Handler:           traced(e.tp, a.routes()),
		ReadHeaderTimeout: 10 * time.Second,
		// A body trickled in slowly holds a request open; task bodies are
		// small JSON.
		ReadTimeout: 30 * time.Second,
		IdleTimeout: 2 * time.Minute,
		ErrorLog:    zap.NewStdLog(a.log),
	}
	a.splitAdminPort()
	lc.Append(fx.Hook{OnStart: a.start, OnStop: a.stop})
	return a
}

func (a *adminServer) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "alive"})
	})
	mux.HandleFunc("GET /readyz", a.ready)
	mux.HandleFunc("GET /v1/providers", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"providers": a.engine.Providers(r.Context())})
	})
	mux.HandleFunc("GET /v1/pools", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, a.engine.Pools())
	})
	mux.HandleFunc("GET /v1/report/timeline", a.timeline)
	mux.HandleFunc("POST /v1/providers", a.mutating(a.addProvider))
	mux.HandleFunc("DELETE /v1/providers/{id}", a.mutating(a.removeProvider))
	mux.HandleFunc("POST /v1/tasks", a.tasksGuard(a.runTask))
	mux.HandleFunc("GET /v1/tasks/{id}", a.tasksGuard(a.getTask))
	mux.HandleFunc("DELETE /v1/tasks/{id}", a.tasksGuard(a.cancelTask))
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.metrics.Registry(), promhttp.HandlerOpts{}))
	return mux
}

// start listens, so that a port in use fails the start with its name, and
// serves on a goroutine that stop waits for.
func (a *adminServer) start(context.Context) error {
	l, err := net.Listen("tcp", a.settings.Addr)
	if err != nil {
		return fmt.Errorf("admin server: listen on %s: %w", a.settings.Addr, err)
	}
	if err := a.listenAdminPort(); err != nil {
		_ = l.Close()
		return err
	}
	a.addr = l.Addr()
	a.served = make(chan error, 1)
	go func() { a.served <- a.srv.Serve(l) }()
	a.log.Info("admin server listening", zap.Stringer("addr", a.addr))
	return nil
}

// stop closes the listener and waits for the requests in flight to finish,
// within what ctx leaves after the cleanup reserve: no request, however
// long or slow, may cost the providers their cleanup. When that runs out,
// the tasks still running are cancelled, and their handlers, which answer
// 503 and record the task, get a moment to do so before the connections
// are closed. The shutdown goes on either way: running out of time here is
// logged, not returned, since fx would skip the hooks after a failed one.
// The admin port, if any, closes at the same time, within the same time.
func (a *adminServer) stop(ctx context.Context) error {
	httpCtx := ctx
	if deadline, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		httpCtx, cancel = context.WithDeadline(ctx, deadline.Add(-a.settings.CleanupReserve))
		defer cancel()
	}
	portStopped := a.stopAdminPort(httpCtx)
	defer func() { <-portStopped }()
	err := a.srv.Shutdown(httpCtx)
	if err != nil {
		cut := a.engine.CancelTasks()
		a.log.Warn("requests still in flight when the shutdown's HTTP time ran out: tasks cancelled",
			zap.Int("tasks", cut), zap.Duration("cleanup_reserve", a.settings.CleanupReserve))
		answerCtx, cancel := context.WithTimeout(ctx, answerGrace(a.settings.CleanupReserve))
		err = a.srv.Shutdown(answerCtx)
		cancel()
		if err != nil {
			_ = a.srv.Close() // a handler that ignores cancellation: cut it
		}
	}
	if a.served != nil {
		<-a.served // ErrServerClosed, once Shutdown or Close has closed the listener
	}
	if err != nil {
		a.log.Warn("admin server closed with requests unanswered", zap.Error(err))
		return nil
	}
	a.log.Info("admin server stopped")
	return nil
}

// answerGrace is how long cancelled tasks get to be answered and recorded:
// a small part of the cleanup reserve.
func answerGrace(reserve time.Duration) time.Duration {
	return min(time.Second, reserve/4)
}

func (a *adminServer) ready(w http.ResponseWriter, r *http.Request) {
	ok, why := a.engine.Ready(r.Context())
	code := http.StatusOK
	if !ok {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]any{"ready": ok, "reasons": why})
}

// mutating guards the endpoints that change the service: they need the
// configured bearer token, and answer 403 when none is configured.
func (a *adminServer) mutating(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.settings.AdminToken == "" {
			writeError(w, http.StatusForbidden, errors.New("the admin API is disabled: no admin_token is configured"))
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(a.settings.AdminToken)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="gleitzeit"`)
			writeError(w, http.StatusUnauthorized, errors.New("this endpoint needs the admin token in the Authorization header"))
			return
		}
		next(w, r)
	}
}

func (a *adminServer) addProvider(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ID       string `json:"id"`
		Template string `json:"template"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	if err := a.engine.Add(r.Context(), req.ID, req.Template); err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	for _, v := range a.engine.Providers(r.Context()) {
		if v.ID == req.ID {
			writeJSON(w, http.StatusCreated, v)
			return
		}
	}
	writeJSON(w, http.StatusCreated, map[string]string{"id": req.ID})
}

func (a *adminServer) removeProvider(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	out, err := a.engine.Remove(r.Context(), id)
	if err != nil && out.Result == 0 {
		writeError(w, statusOf(err), err)
		return
	}
	body := map[string]any{"id": id, "cleanup": out}
	if err != nil {
		body["error"] = lifecycle.Redact(err.Error())
	}
	writeJSON(w, http.StatusOK, body)
}

func (a *adminServer) runTask(w http.ResponseWriter, r *http.Request) {
	var t Task
	if !readJSON(w, r, &t) {
		a.metrics.refuse(refusedBadRequest)
		return
	}
	ctx, announced := r.Context(), announceTaskID(w, r)
	var stream *eventStream
	if wantsStream(r) {
		var gone context.CancelFunc
		ctx, gone = context.WithCancel(ctx)
		defer gone()
		stream = newEventStream(w, gone)
		ctx = withProgress(ctx, stream.progress)
		early := announced
		announced = func(id string) { early(id); stream.begin(id) }
	}
	rec, err := a.engine.Run(withAnnounce(ctx, announced), t)
	code, body := http.StatusOK, any(rec)
	if err != nil {
		a.metrics.refuse(refusal(rec, err))
		fail := map[string]any{"error": boundText(lifecycle.Redact(err.Error()))}
		if rec.ID != "" { // recorded: it can be looked up
			fail["task"] = rec
		}
		var busy *busyError
		if errors.As(err, &busy) {
			w.Header().Set("Retry-After", strconv.Itoa(int(max(time.Second, busy.retryAfter.Round(time.Second))/time.Second)))
		}
		code, body = statusOf(err), fail
	}
	if stream != nil && stream.result(body) {
		return
	}
	writeJSON(w, code, body)
}

func (a *adminServer) getTask(w http.ResponseWriter, r *http.Request) {
	rec, err := a.engine.Task(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

// statusOf maps an error to its HTTP status.
func statusOf(err error) int {
	switch {
	case errors.Is(err, errTaskCancelled), errors.Is(err, errClientGone), errors.Is(err, errTaskFinished), errors.Is(err, errTaskElsewhere):
		return http.StatusConflict
	case errors.Is(err, errBadRequest):
		return http.StatusBadRequest
	case errors.Is(err, mcp.ErrToolError):
		// The request reached the tool, which refused or failed it and
		// said why (an MCP server also answers an unknown tool and bad
		// arguments so): the caller's to act on, not a gateway's fault.
		return http.StatusUnprocessableEntity
	case errors.Is(err, pool.ErrQueueFull):
		return http.StatusTooManyRequests
	case errors.Is(err, errNoProtocol), errors.Is(err, errUnknownID), errors.Is(err, taskstore.ErrNoTask), errors.Is(err, errNotFound),
		errors.Is(err, pool.ErrUnknown):
		return http.StatusNotFound
	case errors.Is(err, lifecycle.ErrDuplicateID), errors.Is(err, lifecycle.ErrHasDependents), errors.Is(err, errNotRemovable),
		errors.Is(err, errPooled), errors.Is(err, pool.ErrExists):
		return http.StatusConflict
	case errors.Is(err, errShuttingDown), errors.Is(err, errNoProvider), errors.Is(err, lifecycle.ErrStopped),
		errors.Is(err, errStoreUnavailable), errors.Is(err, errAuditUnavailable), errors.Is(err, errUnavailable), errors.Is(err, pool.ErrQueueTimeout),
		errors.Is(err, pool.ErrClosed), errors.Is(err, pool.ErrNoInstance):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		// Only the end may follow the object: dec.More says false for a
		// stray ']' or '}', and for a read error.
		if _, terr := dec.Token(); !errors.Is(terr, io.EOF) {
			err = errors.New("more data after the JSON object")
			if tooLarge := (*http.MaxBytesError)(nil); errors.As(terr, &tooLarge) {
				err = terr
			}
		}
	}
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Errorf("request body: larger than %d bytes", tooLarge.Limit))
		return false
	case err != nil:
		writeError(w, http.StatusBadRequest, fmt.Errorf("request body: %w", err))
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": boundText(lifecycle.Redact(err.Error()))})
}
