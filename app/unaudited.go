package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gleitzeit/gleitzeit/app/config"
	"github.com/gleitzeit/gleitzeit/app/taskstore"
)

// refuseUnaudited answers a task whose first record committed but whose
// audit line failed: it does not run (every task that runs is in the audit
// log), and the store's record, which says "running", is settled as
// "rejected" with the reason, so that the 503 carries the task's id and
// the store says what the answer says. The audit log is not written again:
// it is what failed. If the store cannot take the outcome either, the
// answer has no id, and the replica's sweep settles the record, which no
// request runs any more (see replica.settleAbandoned).
//
// The answer, and the record, say only that the audit log is unavailable
// (a provider, so 503); the audit log's own error is logged.
func (e *Engine) refuseUnaudited(rec taskstore.Record, auditErr error) (taskstore.Record, error) {
	refused := fmt.Errorf("%w: %w: the task was not run", errUnavailable, errAuditUnavailable)
	_ = e.storeFault("the task's audit line failed: it is recorded as rejected, and did not run", auditErr)
	rec.Status, rec.Error = "rejected", refused.Error()
	e.count(rec, true)
	if err := e.save(rec, taskstore.Finish); err != nil {
		return taskstore.Record{}, e.storeFault("the task was not recorded, and did not run", err)
	}
	return rec, refused
}

// save commits a task's record in the store, under a lease of the store,
// with a context of its own: record's first half, without the audit line.
func (e *Engine) save(rec taskstore.Record, save func(context.Context, taskstore.Execer, taskstore.Record) error) error {
	begun := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, releaseStore, err := e.reg.Acquire(ctx, config.StoreID)
	if err != nil {
		return fmt.Errorf("record task %s: %w", rec.ID, err)
	}
	defer releaseStore()
	db, err := e.store.DB()
	if err != nil {
		e.watch.storeFailed(begun, err.Error())
		return err
	}
	if err := e.commits.Do(ctx, db, func(ctx context.Context, x taskstore.Execer) error { return save(ctx, x, rec) }); err != nil {
		if !errors.Is(err, taskstore.ErrNotRunning) { // if it is, the store answered
			e.watch.storeFailed(begun, err.Error())
		}
		return err
	}
	e.watch.storeWorks(begun)
	return nil
}
