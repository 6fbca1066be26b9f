package app

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// execer runs a statement: the pool, or a batch's transaction.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// groupCommit commits the task records of concurrent tasks together, as
// databases group the flushes of their logs: one transaction, so one
// fsync, for many records. Each caller still returns only once the
// transaction that holds its record has committed, so an answer that says
// a task was recorded is as true as with a commit of its own.
//
// There is no goroutine of its own to start and stop: the first caller to
// find no commit in progress leads. It waits up to maxDelay for more
// records (or until maxBatch wait), commits the first maxBatch, tells each
// caller its result, and hands the lead to the first record left waiting,
// whose caller commits the next batch. Records that arrive during a commit
// therefore form the next batch: under load, batches grow by themselves,
// and alone, a record waits for nothing but its own commit (with the
// default maxDelay of 0).
type groupCommit struct {
	maxBatch int
	maxDelay time.Duration

	batches atomic.Int64 // transactions of more than one record, for the tests

	mu      sync.Mutex      // guards pending and leading
	pending []*pendingWrite // in arrival order; the first is the leader's, or the next leader's
	leading bool            // a caller is committing, or waiting out maxDelay
	full    chan struct{}
}

// pendingWrite is one record waiting to be committed.
type pendingWrite struct {
	exec  func(context.Context, execer) error
	ready chan turn // buffered: the leader never blocks on it
}

// turn is what a waiting caller is told: its record's result, or that it
// leads the next batch.
type turn struct {
	err  error
	lead bool
}

func newGroupCommit(maxBatch int, maxDelay time.Duration) *groupCommit {
	return &groupCommit{maxBatch: max(maxBatch, 1), maxDelay: maxDelay, full: make(chan struct{}, 1)}
}

// do runs exec in a transaction with the records of other callers, and
// returns once that transaction has committed or failed.
func (g *groupCommit) do(ctx context.Context, db *sql.DB, exec func(context.Context, execer) error) error {
	w := &pendingWrite{exec: exec, ready: make(chan turn, 1)}
	g.mu.Lock()
	g.pending = append(g.pending, w)
	if !g.leading {
		g.leading = true // pending held nothing: w is its first
		g.mu.Unlock()
		return g.lead(ctx, db, w)
	}
	if len(g.pending) >= g.maxBatch {
		select {
		case g.full <- struct{}{}:
		default:
		}
	}
	g.mu.Unlock()
	// Bounded: the leader's own context bounds its commit, and it tells
	// every caller of its batch.
	t := <-w.ready
	if !t.lead {
		return t.err
	}
	return g.lead(ctx, db, w)
}

// lead commits one batch, which begins with w, tells its callers, and
// passes the lead on.
func (g *groupCommit) lead(ctx context.Context, db *sql.DB, w *pendingWrite) error {
	if g.maxDelay > 0 {
		select {
		case <-g.full: // left by a batch that filled before its leader looked
		default:
		}
		g.mu.Lock()
		short := len(g.pending) < g.maxBatch
		g.mu.Unlock()
		if short {
			t := time.NewTimer(g.maxDelay)
			select {
			case <-t.C:
			case <-g.full:
			case <-ctx.Done():
			}
			t.Stop()
		}
	}
	g.mu.Lock()
	n := min(len(g.pending), g.maxBatch)
	batch := slices.Clone(g.pending[:n])
	g.pending = slices.Delete(g.pending, 0, n)
	g.mu.Unlock()

	if len(batch) > 1 {
		g.batches.Add(1)
	}
	errs := safeCommit(ctx, db, batch)
	var mine error
	for i, b := range batch {
		if b == w {
			mine = errs[i]
			continue
		}
		b.ready <- turn{err: errs[i]}
	}
	g.mu.Lock()
	if len(g.pending) > 0 {
		g.pending[0].ready <- turn{lead: true}
	} else {
		g.leading = false
	}
	g.mu.Unlock()
	return mine
}

// safeCommit is commitBatch, a panic in it turned into every record's
// error: the batch's callers are told, and the lead is passed on, whatever
// happens, or every record after it would wait for ever.
func safeCommit(ctx context.Context, db *sql.DB, batch []*pendingWrite) (errs []error) {
	defer func() {
		if v := recover(); v != nil {
			errs = make([]error, len(batch))
			for i := range errs {
				errs[i] = fmt.Errorf("task store: commit panicked: %v", v)
			}
		}
	}()
	return commitBatch(ctx, db, batch)
}

// commitBatch runs a batch's statements in one transaction. If one of
// them fails, the transaction is rolled back (PostgreSQL would refuse the
// rest of it anyway) and each statement runs again on its own, so that
// one bad record fails alone.
func commitBatch(ctx context.Context, db *sql.DB, batch []*pendingWrite) []error {
	errs := make([]error, len(batch))
	if len(batch) == 1 {
		errs[0] = batch[0].exec(ctx, db)
		return errs
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	defer func() { _ = tx.Rollback() }() // after a panic; after Commit, it does nothing
	x := &preparedTx{tx: tx, stmts: map[string]*sql.Stmt{}}
	for _, b := range batch {
		if err := b.exec(ctx, x); err != nil {
			_ = tx.Rollback()
			for i, b := range batch {
				errs[i] = b.exec(ctx, db)
			}
			return errs
		}
	}
	if err := tx.Commit(); err != nil {
		for i := range errs {
			errs[i] = err
		}
	}
	return errs
}

// preparedTx runs a batch's statements in its transaction, each text
// prepared once: a batch repeats the same two statements, and parsing them
// again for every record was a good part of the one writer's time.
type preparedTx struct {
	tx    *sql.Tx
	stmts map[string]*sql.Stmt // closed with the transaction
}

func (p *preparedTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, ok := p.stmts[query]
	if !ok {
		var err error
		if st, err = p.tx.PrepareContext(ctx, query); err != nil {
			return nil, err
		}
		p.stmts[query] = st
	}
	return st.ExecContext(ctx, args...)
}
