package app

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/gleitzeit/gleitzeit/app/taskstore"
)

// Errors of a task's cancellation, each with its HTTP status in the admin
// server.
var (
	// errTaskCancelled is the cause of a task's context that
	// DELETE /v1/tasks/{id} ended, and the error of the task.
	errTaskCancelled = errors.New("the task was cancelled by a client: DELETE /v1/tasks/{id}")
	// errClientGone: the request that sent the task ended (its client
	// closed the connection, or went away from a stream) before the
	// answer: the task is cancelled, on the provider too.
	errClientGone = errors.New("the task was cancelled: its client went away")
	// errTaskFinished: the task was answered before it could be cancelled.
	errTaskFinished = errors.New("the task has finished: there is nothing to cancel")
	// errTaskElsewhere: the store says the task runs, but not here.
	errTaskElsewhere = errors.New("the task runs on another replica of the service, which alone can cancel it")
)

// flight is a task this replica runs.
type flight struct {
	cancel context.CancelCauseFunc
	done   chan struct{}    // closed once the task is answered
	rec    taskstore.Record // the answer, set before done is closed
}

// inflight holds the tasks this replica runs, by id, from the moment they
// are recorded until they are answered: what DELETE /v1/tasks/{id} can
// cancel. Its zero value is ready to use.
type inflight struct {
	mu    sync.Mutex // guards tasks
	tasks map[string]*flight
}

// begin adds the task with id, which cancel ends.
func (f *inflight) begin(id string, cancel context.CancelCauseFunc) *flight {
	fl := &flight{cancel: cancel, done: make(chan struct{})}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.tasks == nil {
		f.tasks = map[string]*flight{}
	}
	f.tasks[id] = fl
	return fl
}

// end removes the task, answered with rec, and hands rec to whoever
// waits to know how it ended.
func (f *inflight) end(fl *flight, rec taskstore.Record) {
	f.mu.Lock()
	delete(f.tasks, rec.ID)
	f.mu.Unlock()
	fl.rec = rec
	close(fl.done)
}

func (f *inflight) get(id string) (*flight, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fl, ok := f.tasks[id]
	return fl, ok
}

// CancelTask cancels the task with id, if this replica runs it, and
// returns its record once it is answered: the id is the capability, since
// only its caller knows it. A task that ended otherwise, or that the
// store says runs elsewhere, is returned with the error that says so.
func (e *Engine) CancelTask(ctx context.Context, id string) (taskstore.Record, error) {
	if !validTaskID(id) {
		return taskstore.Record{}, fmt.Errorf("%w: a task id is 24 lowercase hex digits", taskstore.ErrNoTask)
	}
	if fl, ok := e.flight.get(id); ok {
		fl.cancel(errTaskCancelled)
		select {
		case <-fl.done:
		case <-ctx.Done():
			return taskstore.Record{}, fmt.Errorf("task %s: cancelled, but not answered yet: %w", id, ctx.Err())
		}
		if fl.rec.Status != "cancelled" {
			return fl.rec, fmt.Errorf("%w: task %s ended %s before it could be cancelled", errTaskFinished, id, fl.rec.Status)
		}
		return fl.rec, nil
	}
	rec, err := e.Task(ctx, id)
	switch {
	case err != nil:
		return taskstore.Record{}, err
	case rec.Status == "running":
		return rec, fmt.Errorf("%w: task %s is not running on this replica", errTaskElsewhere, id)
	}
	return rec, fmt.Errorf("%w: task %s ended %s", errTaskFinished, id, rec.Status)
}

// announceKey is the context key of the function Run tells a task's id.
type announceKey struct{}

// withAnnounce returns ctx with fn, which Run calls with the task's id
// once it is recorded and can be cancelled, before it runs.
func withAnnounce(ctx context.Context, fn func(id string)) context.Context {
	return context.WithValue(ctx, announceKey{}, fn)
}

// announce tells the task's id to the function ctx carries, if any.
func announce(ctx context.Context, id string) {
	if fn, ok := ctx.Value(announceKey{}).(func(string)); ok {
		fn(id)
	}
}
