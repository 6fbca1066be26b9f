package taskstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"math/rand/v2"
	"time"

	"go.uber.org/zap"

	"github.com/gleitzeit/gleitzeit/providers/sqldb"
)

// retentionLock is the PostgreSQL advisory lock a replica holds while it
// deletes expired tasks, so that one replica at a time does.
const retentionLock = migrateLock + 1

// Retention's pace. A batch is one statement, so one short transaction:
// task writes wait for at most one batch, never for a whole sweep. Between
// batches the sweep rests at least as long as the last batch took, which
// leaves writers at least half of the database's time even on SQLite, whose
// one writer the batches share with them.
const (
	retentionBatch    = 1000
	retentionMinPause = 10 * time.Millisecond
	retentionMaxEvery = time.Hour
)

// Retention deletes the tasks that started more than keep ago: a sweep
// every so often, in batches, by one replica at a time on PostgreSQL (the
// one holding a session advisory lock).
type Retention struct {
	db     *sql.DB
	driver string
	keep   time.Duration
	every  time.Duration // between sweeps, on average
	batch  int
	log    *zap.Logger
	// expired counts the tasks deleted; nil in tests that need no count.
	expired func(int64)

	cancel context.CancelFunc
	done   chan struct{}
}

// NewRetention returns a retention of keep on db, whose driver is
// driverName, that logs to log and tells expired, if not nil, how many
// tasks each batch deleted (the service counts them in a metric). It does
// nothing until Start.
func NewRetention(db *sql.DB, driverName string, keep time.Duration, log *zap.Logger, expired func(int64)) *Retention {
	// A sweep every 1/24 of the retention (an hour at most): what is kept
	// exceeds the retention by at most about 4%.
	every := min(keep/24, retentionMaxEvery)
	return &Retention{db: db, driver: driverName, keep: keep, every: every, batch: retentionBatch, log: log, expired: expired}
}

// Start begins sweeping, in a goroutine that Stop ends.
func (r *Retention) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan struct{})
	go r.run(ctx)
}

// Stop ends the sweeping, cancelling a batch in progress (its statement
// rolls back: nothing is half deleted), and returns once it has ended, so
// that nothing uses the store after it. Stop without Start does nothing,
// and a second Stop returns at once.
func (r *Retention) Stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	<-r.done
}

func (r *Retention) run(ctx context.Context) {
	defer close(r.done)
	// The first sweep comes at a random moment within the first interval,
	// and each next one after 0.5 to 1.5 intervals: replicas started
	// together do not all wake together, and a replica restarted often
	// still sweeps.
	wait := rand.N(r.every)
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		n, swept, err := r.sweep(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			r.log.Warn("task store: retention failed; it is tried again later", zap.Int64("deleted", n), zap.Error(err))
		case n > 0:
			r.log.Info("task store: expired tasks deleted", zap.Int64("deleted", n), zap.Duration("retention", r.keep))
		case !swept:
			r.log.Debug("task store: another replica is deleting expired tasks")
		}
		wait = r.every/2 + rand.N(r.every)
	}
}

// sweep deletes the tasks that started before now - keep, a batch at a
// time, unless another replica is doing so (swept is then false). It
// returns how many it deleted.
func (r *Retention) sweep(ctx context.Context) (deleted int64, swept bool, err error) {
	cutoff := storeTime(time.Now().Add(-r.keep))
	var x Execer = r.db
	if r.driver == sqldb.Postgres {
		// A session lock, on a connection of its own for the sweep: if the
		// replica dies, its session ends and the lock with it.
		conn, err := r.db.Conn(ctx)
		if err != nil {
			return 0, false, fmt.Errorf("task store: retention: %w", err)
		}
		defer func() { _ = conn.Close() }()
		var locked bool
		if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, retentionLock).Scan(&locked); err != nil {
			// The server may have granted the lock before the error:
			// the connection goes, and its session's lock with it.
			drop(conn)
			return 0, false, fmt.Errorf("task store: retention: take the lock: %w", err)
		}
		if !locked {
			return 0, false, nil
		}
		defer unlock(conn)
		x = conn
	}
	// On SQLite, each batch takes a connection from the pool and gives it
	// back, so task writes are not kept from the one writer between
	// batches.
	for {
		begin := time.Now()
		res, err := x.ExecContext(ctx,
			`DELETE FROM tasks WHERE id IN (SELECT id FROM tasks WHERE started < $1 LIMIT $2)`, cutoff, r.batch)
		if err != nil {
			return deleted, true, fmt.Errorf("task store: retention: delete tasks started before %s: %w", cutoff, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return deleted, true, fmt.Errorf("task store: retention: %w", err)
		}
		deleted += n
		if r.expired != nil && n > 0 {
			r.expired(n)
		}
		if n < int64(r.batch) {
			return deleted, true, nil
		}
		t := time.NewTimer(max(time.Since(begin), retentionMinPause))
		select {
		case <-ctx.Done():
			t.Stop()
			return deleted, true, ctx.Err()
		case <-t.C:
		}
	}
}

// unlock releases the retention lock, or, if it cannot, drops the
// connection: a session that kept the lock in the pool would keep every
// replica from sweeping until it closed.
func unlock(conn *sql.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_unlock($1)`, retentionLock); err != nil {
		drop(conn)
	}
}

// drop closes conn's connection rather than giving it back to the pool:
// database/sql discards a connection whose Raw call fails with ErrBadConn.
func drop(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
}
