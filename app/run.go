package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/gleitzeit/gleitzeit/app/config"
	"github.com/gleitzeit/gleitzeit/app/pool"
	"github.com/gleitzeit/gleitzeit/app/taskstore"
	"github.com/gleitzeit/gleitzeit/lifecycle"
	"github.com/gleitzeit/gleitzeit/providers/mcp"
)

// Task is a unit of work: a method of a protocol, with its params.
type Task struct {
	Protocol string          `json:"protocol"`
	Method   string          `json:"method"`
	Params   json.RawMessage `json:"params,omitempty"`
	// Timeout, if set, shortens the task's deadline below task_timeout.
	Timeout TaskTimeout `json:"timeout,omitempty"`
}

// TaskTimeout is a task's own deadline: a duration such as "5s" or
// "1m30s". In JSON it may also be a number of seconds (5, 0.5), as most
// HTTP APIs take a timeout.
type TaskTimeout string

// UnmarshalJSON takes a duration string or a number of seconds.
func (t *TaskTimeout) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err == nil {
		if secs, err := strconv.ParseFloat(s, 64); err == nil {
			// "5": a number of seconds in quotes, taken as the number.
			s = strconv.FormatFloat(secs, 'f', -1, 64) + "s"
		}
		*t = TaskTimeout(s)
		return nil
	}
	var seconds float64
	if err := json.Unmarshal(data, &seconds); err != nil {
		return fmt.Errorf("timeout: want a number of seconds such as 5, or a duration such as \"5s\", got %s", quote(string(data)))
	}
	// Kept as the number was written, so that checkTask can quote it.
	*t = TaskTimeout(strconv.FormatFloat(seconds, 'f', -1, 64) + "s")
	return nil
}

// busyError is a task refused because every instance was busy: the queue
// was full, or the wait ran out. RetryAfter is when to try again.
type busyError struct {
	err        error
	retryAfter time.Duration
}

func (b *busyError) Error() string { return b.err.Error() }
func (b *busyError) Unwrap() error { return b.err }

// checkRequest refuses, before an instance is chosen, a task its
// protocol's providers could never take: an Ollama template's unknown
// method or params that do not fit it, an MCP request a caller may not
// send or that lacks what it requires. Such a task is the caller's mistake
// (400) whether or not an instance is up, not a 503 that sends it back
// later. A protocol served by templates of two kinds is left to each.
func (e *Engine) checkRequest(ctx context.Context, t Task) error {
	kind := ""
	for _, p := range e.byProtocol[t.Protocol] {
		k := e.settings.Templates[p.Config().Template].Kind
		if kind != "" && k != kind {
			return nil
		}
		kind = k
	}
	switch kind {
	case "ollama":
		_, err := llmRequest(t.Method, t.Params, progressOf(ctx) != nil)
		return err
	case "mcp":
		return mcpCheck(t.Method, t.Params)
	}
	return nil
}

// Run runs a task on an instance of its protocol and records it, in a
// span of its own if the service traces.
func (e *Engine) Run(ctx context.Context, t Task) (taskstore.Record, error) {
	if e.tracer != nil {
		return e.traceTask(ctx, t)
	}
	return e.run(ctx, t)
}

func (e *Engine) run(ctx context.Context, t Task) (taskstore.Record, error) {
	// A request refused before it is recorded gets no id: every id the
	// service answers with can be looked up.
	if e.stopped.Load() || !e.started.Load() {
		return taskstore.Record{}, errShuttingDown
	}
	// Checked before anything is recorded: what a client sends costs no
	// row and no audit line until it is a task the service can run.
	timeout, err := checkTask(t, e.settings.TaskTimeout)
	if err != nil {
		return taskstore.Record{}, err
	}
	if len(e.byProtocol[t.Protocol]) == 0 {
		e.count(taskstore.Record{Protocol: t.Protocol, Status: "rejected"}, false)
		return taskstore.Record{}, fmt.Errorf("%w: %s", errNoProtocol, quote(t.Protocol))
	}
	rec := taskstore.Record{ID: newTaskID(), Protocol: t.Protocol, Method: t.Method, Status: "running", Started: time.Now(), Replica: e.replica.id}
	defer e.replica.running(rec.ID)()
	// Recorded before it reaches a provider: a task the store cannot take
	// does not run, so nothing runs unrecorded and a retry runs nothing
	// twice.
	if err := e.record(rec, taskstore.Begin); err != nil {
		if errors.Is(err, errAuditUnavailable) {
			return e.refuseUnaudited(rec, err)
		}
		return taskstore.Record{}, e.storeFault("the task was not recorded, and did not run", err)
	}
	ctx, cancel := e.withTimeout(ctx, timeout)
	defer cancel()
	ctx, cut := context.WithCancelCause(ctx)
	defer cut(nil)
	defer context.AfterFunc(e.tasks, func() { cut(context.Cause(e.tasks)) })()
	fl := e.flight.begin(rec.ID, cut)
	defer func() { e.flight.end(fl, rec) }() // rec as answered
	announce(ctx, rec.ID)
	e.running.Add(1)
	defer e.running.Add(-1)

	// What its providers could never take is refused before an instance
	// is chosen, so that it is the caller's mistake whether or not one is
	// up; recorded, as a provider's own refusal of it was.
	err = e.checkRequest(ctx, t)
	var lease *pool.Lease[endpoint]
	if err == nil {
		lease, err = e.pick(ctx, t.Protocol)
	}
	served := !errors.Is(err, errNoProtocol)
	if err == nil {
		rec.Provider = lease.ID
		rec.Output, err = e.runOn(ctx, lease, t)
		if !utf8.Valid(rec.Output) {
			// A child may write bytes as they come, which PostgreSQL would
			// refuse to store: the answer and the record carry the same
			// valid text, each run of bad bytes U+FFFD, as JSON decoders read it.
			rec.Output = json.RawMessage(strings.ToValidUTF8(string(rec.Output), "\uFFFD"))
		}
	}
	rec.DurationMS = float64(time.Since(rec.Started).Microseconds()) / 1000
	switch {
	case err == nil:
		rec.Status = "ok"
	case errors.Is(context.Cause(ctx), errTaskCancelled):
		rec.Status = "cancelled"
		err = errTaskCancelled
	case errors.Is(context.Cause(ctx), errCutShort):
		rec.Status = "cancelled"
		err = fmt.Errorf("%w: %w", errShuttingDown, errCutShort)
	case errors.Is(ctx.Err(), context.DeadlineExceeded): // the task's deadline, wherever it caught the task
		rec.Status = "timeout"
		err = fmt.Errorf("task timed out after %v: %w", timeout, context.DeadlineExceeded)
	case errors.Is(ctx.Err(), context.Canceled):
		rec.Status = "cancelled"
		err = errClientGone
	case errors.Is(err, errNoProvider), errors.Is(err, errNoProtocol), errors.Is(err, errShuttingDown),
		errors.Is(err, pool.ErrQueueFull), errors.Is(err, pool.ErrQueueTimeout), errors.Is(err, pool.ErrClosed):
		rec.Status = "rejected"
	default:
		rec.Status = "error"
	}
	if err != nil {
		rec.Error = boundText(lifecycle.Redact(err.Error()))
		if errors.Is(err, mcp.ErrToolError) {
			// A tool that failed said why in its result (content,
			// structuredContent), which the caller gets whole, redacted as
			// the error is: it is the error's detail.
			rec.Output = redactJSON(rec.Output)
		} else {
			rec.Output = nil
		}
	}
	if serr := e.record(rec, taskstore.Finish); serr != nil {
		// The task ran, but its outcome is not in the store, which still
		// says "running": the answer must not claim more.
		serr = e.storeFault("the task ran, but its outcome could not be recorded", serr)
		rec.Status, rec.Output = "unrecorded", nil
		rec.Error = serr.Error()
		e.count(rec, served)
		return rec, serr
	}
	e.count(rec, served)
	if err != nil {
		e.logFailed(rec, err)
	}
	return rec, err
}

// logFailed logs a task that did not succeed at the level its cause
// deserves: a provider's failure at warn, for the operator; a timeout and a
// refusal for want of capacity or health at info, since their numbers are
// in the metrics and the health transitions are logged on their own; the
// caller's mistakes (a bad request, a tool's refusal) and a cancellation
// at debug. (A task the store or the audit log could not record is told by
// their transitions, once.)
func (e *Engine) logFailed(rec taskstore.Record, err error) {
	level := zapcore.WarnLevel
	switch {
	case errors.Is(err, errBadRequest), errors.Is(err, errNotFound), errors.Is(err, mcp.ErrToolError), rec.Status == "cancelled":
		level = zapcore.DebugLevel
	case rec.Status == "timeout", rec.Status == "rejected":
		level = zapcore.InfoLevel
	}
	if ce := e.log.Check(level, "task failed"); ce != nil {
		ce.Write(zap.String("task", rec.ID), zap.String("protocol", rec.Protocol), zap.String("method", rec.Method),
			zap.String("provider", rec.Provider), zap.String("status", rec.Status), zap.String("error", rec.Error))
	}
}

// runOn runs the task on the instance its lease holds. The lease is given back
// however the handler returns: a handler that panicked would otherwise
// hold the instance's cleanup for its whole timeout. The panic becomes the
// task's error, so the task is answered and recorded like any other
// failure.
func (e *Engine) runOn(ctx context.Context, lease *pool.Lease[endpoint], t Task) (out json.RawMessage, err error) {
	defer lease.Release()
	defer func() {
		if v := recover(); v != nil {
			e.log.Error("task handler panicked", zap.String("provider", lease.ID), zap.String("method", t.Method),
				zap.String("panic", lifecycle.Redact(fmt.Sprint(v))), zap.ByteString("stack", debug.Stack()))
			out, err = nil, fmt.Errorf("the provider's handler panicked: %v", v)
		}
	}()
	if e.tracer != nil {
		out, err = e.traceCall(ctx, lease.ID, t, func(ctx context.Context) (json.RawMessage, error) {
			return lease.Handle.call(ctx, t.Method, t.Params)
		})
	} else {
		out, err = lease.Handle.call(ctx, t.Method, t.Params)
	}
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		lease.TimedOut() // unanswered within the task's time: a busy instance may be a hung one
	}
	return out, err
}

// count adds the task to the metrics. A protocol no provider serves is
// counted as "unknown": the label is the client's to choose, and a label
// per made-up protocol would grow the metrics without bound.
func (e *Engine) count(rec taskstore.Record, served bool) {
	if !served {
		rec.Protocol = "unknown"
	}
	e.metrics.observeTask(rec)
}

// record saves the task and appends its audit line, under leases of the
// store and the audit log, with a context of its own: a task that ran out
// of time is recorded all the same. It returns once the record is
// committed, with those of concurrent tasks (see taskstore.GroupCommit): a task
// answered as recorded is in the store even if the service dies at once.
func (e *Engine) record(rec taskstore.Record, save func(context.Context, taskstore.Execer, taskstore.Record) error) error {
	if err := e.save(rec, save); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, releaseAudit, err := e.reg.Acquire(ctx, config.AuditID)
	if err != nil {
		return fmt.Errorf("audit task %s: %w", rec.ID, err)
	}
	defer releaseAudit()
	if err := e.audit.Write(map[string]any{
		"time": rec.Started.UTC(), "task": rec.ID, "protocol": rec.Protocol, "method": rec.Method,
		"provider": rec.Provider, "status": rec.Status, "duration_ms": rec.DurationMS,
	}); err != nil {
		return fmt.Errorf("%w: %w", errAuditUnavailable, err)
	}
	return nil
}

// pick leases an instance of the protocol. With one template serving it,
// its pool decides (and may queue the task). With several, the least
// utilized that can take the task at once gets it; if none can, the task
// waits in the first sized pool's queue. If no instance was usable because
// the last health check called them unhealthy, it looks again, live,
// rather than refuse for a whole poll interval while readiness may already
// say 200.
func (e *Engine) pick(ctx context.Context, protocol string) (*pool.Lease[endpoint], error) {
	pools := e.byProtocol[protocol]
	if len(pools) == 0 {
		return nil, fmt.Errorf("%w: %s", errNoProtocol, quote(protocol))
	}
	lease, err := e.acquire(ctx, pools)
	if errors.Is(err, pool.ErrNoInstance) && len(e.unhealthy(pools)) > 0 {
		e.liveHealth(ctx)
		lease, err = e.acquire(ctx, pools)
	}
	var b *busyError
	switch {
	case err == nil:
		return lease, nil
	case errors.Is(err, pool.ErrNoInstance):
		if why := e.unhealthy(pools); len(why) > 0 {
			return nil, fmt.Errorf("%w: %q (%w; %s)", errNoProvider, protocol, err, strings.Join(why, "; "))
		}
		return nil, fmt.Errorf("%w: %q (%w)", errNoProvider, protocol, err)
	case errors.As(err, &b):
		return nil, err
	}
	return nil, fmt.Errorf("%q: %w", protocol, err)
}

func (e *Engine) acquire(ctx context.Context, pools []*pool.Pool[endpoint]) (*pool.Lease[endpoint], error) {
	if len(pools) > 1 {
		byLoad := slices.Clone(pools)
		slices.SortStableFunc(byLoad, func(a, b *pool.Pool[endpoint]) int { return compareLoad(a.Stats(), b.Stats()) })
		for _, p := range byLoad {
			if lease, err := p.TryAcquire(ctx); err == nil {
				return lease, nil
			}
		}
		pools = byLoad
	}
	wait := pools[0]
	for _, p := range pools {
		if p.Config().Sizing != nil {
			wait = p
			break
		}
	}
	lease, err := wait.Acquire(ctx)
	if errors.Is(err, pool.ErrQueueFull) || errors.Is(err, pool.ErrQueueTimeout) {
		return nil, &busyError{err: fmt.Errorf("template %q: %w", wait.Config().Template, err), retryAfter: wait.Config().Sizing.QueueTimeout}
	}
	return lease, err
}

// compareLoad orders pools by tasks in flight per instance.
func compareLoad(a, b pool.Stats) int {
	la, lb := float64(a.Busy)/float64(max(a.Size, 1)), float64(b.Busy)/float64(max(b.Size, 1))
	switch {
	case la < lb:
		return -1
	case la > lb:
		return 1
	}
	return 0
}

func newTaskID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// redactJSON redacts the secrets in a JSON value's text (lifecycle.Redact),
// or gives nil if that left it no valid JSON.
func redactJSON(v json.RawMessage) json.RawMessage {
	r := json.RawMessage(lifecycle.Redact(string(v)))
	if !json.Valid(r) {
		return nil
	}
	return r
}
