package app

import (
	"context"
	"time"

	"github.com/gleitzeit/gleitzeit/app/config"
	"github.com/gleitzeit/gleitzeit/app/taskstore"
	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// probeTaskID is the id of the health poll's probe record, this replica's
// own (replicas on one PostgreSQL do not wait for each other's): not 24
// hex digits, so no client can ask for it (validTaskID), and never visible
// anyway, since the probe deletes it before it commits.
func (e *Engine) probeTaskID() string { return "write-probe-" + e.replica.id }

// probeTimeout bounds the probe's transaction.
const probeTimeout = 5 * time.Second

// probeStore tells, while the task store is failing, whether it can record
// a task again. A store whose records fail may still answer its ping (a
// full disk takes an insert, not a SELECT 1), and a store that is not
// ready gets no traffic to prove it works again: so the health poll writes
// what a task's record needs, in one transaction that inserts a task into
// the tasks table, deletes it and commits, and the store is available
// again once that commits. A store whose health check fails is not probed:
// it is unavailable for that already.
func (e *Engine) probeStore(ctx context.Context, rep lifecycle.HealthReport) {
	if !e.watch.storeFailing() {
		return
	}
	if h, ok := rep.Providers[config.StoreID]; ok && h.Status == lifecycle.StatusUnhealthy {
		return
	}
	begun := time.Now()
	if err := e.storeProbe(ctx); err != nil {
		if ctx.Err() == nil { // not the poll's stop
			e.watch.storeFailed(begun, "write probe: "+err.Error())
		}
		return
	}
	e.watch.storeWorks(begun)
}

// storeProbe inserts a task's record and deletes it, in one transaction,
// under a lease of the store.
func (e *Engine) storeProbe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	_, release, err := e.reg.Acquire(ctx, config.StoreID)
	if err != nil {
		return err
	}
	defer release()
	db, err := e.store.DB()
	if err != nil {
		return err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }() // after Commit, it does nothing
	rec := taskstore.Record{ID: e.probeTaskID(), Protocol: "probe", Method: "probe", Status: "running", Started: time.Now()}
	if err := taskstore.Begin(ctx, tx, rec); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM tasks WHERE id = $1`, rec.ID); err != nil {
		return err
	}
	return tx.Commit()
}
