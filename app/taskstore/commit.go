package taskstore

import (
	"context"
	"database/sql"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Execer runs a statement: the pool, a transaction, or a batch's
// transaction. Begin and Finish write through it, so that the same write
// commits on its own or within a group commit's batch.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// GroupCommit commits the task records of concurrent tasks together, as
// databases group the flushes of their logs: one transaction, so one
// fsync, for many records. Each caller still returns only once the
// transaction that holds its record has committed, so an answer that says
// a task was recorded is as true as with a commit of its own.
//
// There is no goroutine of its own to start and stop: a caller that finds
// fewer than maxLeaders commits in progress leads. It waits up to maxDelay
// for more records (or until maxBatch wait), commits its own record and the
// oldest others, up to maxBatch, tells each caller its result, and hands
// the lead to the oldest record left waiting, whose caller commits the next
// batch. Records that arrive during a commit therefore form the next
// batch: under load, batches grow by themselves, and alone, a record waits
// for nothing but its own commit (with the default maxDelay of 0).
//
// A batch runs on a context of its own (batchTimeout), not its leader's:
// one caller's deadline must not fail the records of the others. Each
// caller waits within its own context; one that gives up before its record
// was taken into a batch takes it back, uncommitted.
type GroupCommit struct {
	maxBatch   int
	maxDelay   time.Duration
	maxLeaders int // batches committing at once: 1 for SQLite's one writer, more for PostgreSQL's pool

	batches atomic.Int64 // transactions of more than one record, for the tests

	mu      sync.Mutex      // guards pending and leaders
	pending []*pendingWrite // in arrival order, not yet in a batch
	leaders int             // callers committing a batch, or waiting out maxDelay
	full    chan struct{}
}

// batchTimeout bounds one batch: its delay, its statements and its commit.
const batchTimeout = 5 * time.Second

// pendingWrite is one record waiting to be committed.
type pendingWrite struct {
	exec  func(context.Context, Execer) error
	ready chan turn // buffered: one message only, so nothing blocks on it
	led   bool      // the lead was handed to it: no other batch may take it; g.mu guards it
}

// turn is what a waiting caller is told: its record's result, or that it
// leads the next batch.
type turn struct {
	err  error
	lead bool
}

// NewGroupCommit returns a group commit of batches of up to maxBatch
// records, whose leaders wait up to maxDelay for more, with up to
// maxLeaders batches committing at once (less than 1 is taken for 1).
func NewGroupCommit(maxBatch int, maxDelay time.Duration, maxLeaders int) *GroupCommit {
	return &GroupCommit{maxBatch: max(maxBatch, 1), maxDelay: maxDelay, maxLeaders: max(maxLeaders, 1), full: make(chan struct{}, 1)}
}

// Do runs exec in a transaction with the records of other callers, and
// returns once that transaction has committed or failed, or ctx ends. exec
// may run twice: again on its own if another record of its batch failed.
func (g *GroupCommit) Do(ctx context.Context, db *sql.DB, exec func(context.Context, Execer) error) error {
	w := &pendingWrite{exec: exec, ready: make(chan turn, 1)}
	g.mu.Lock()
	g.pending = append(g.pending, w)
	if g.leaders < g.maxLeaders {
		g.leaders++
		w.led = true // its own batch's: no other may take it, nor hand it the lead
		g.mu.Unlock()
		return g.lead(db, w)
	}
	if len(g.pending) >= g.maxBatch {
		select {
		case g.full <- struct{}{}:
		default:
		}
	}
	g.mu.Unlock()
	select {
	case t := <-w.ready:
		if t.lead {
			return g.lead(db, w)
		}
		return t.err
	case <-ctx.Done():
		select {
		case t := <-w.ready: // told at the same moment: the answer wins
			if t.lead {
				return g.lead(db, w)
			}
			return t.err
		default:
		}
		return g.leave(ctx, w)
	}
}

// leave takes back the record of a caller whose context ended while it
// waited: uncommitted, if no batch has taken it yet; otherwise its commit
// is under way, and the caller cannot know how it ends.
func (g *GroupCommit) leave(ctx context.Context, w *pendingWrite) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	i := slices.Index(g.pending, w)
	if i < 0 {
		return fmt.Errorf("task store: gave up waiting for the commit of its record, which may yet commit: %w", context.Cause(ctx))
	}
	g.pending = slices.Delete(g.pending, i, i+1)
	if w.led { // the lead was handed to it (under g.mu): pass it on
		<-w.ready
		g.passLead()
	}
	return fmt.Errorf("task store: not recorded: %w", context.Cause(ctx))
}

// passLead hands the lead to the oldest record waiting that has not been
// handed one, or gives it up, and reports whether it handed it. g.mu is
// held.
func (g *GroupCommit) passLead() bool {
	for _, p := range g.pending {
		if !p.led {
			p.led = true
			p.ready <- turn{lead: true}
			return true
		}
	}
	g.leaders--
	return false
}

// lead commits one batch, which holds w, tells its callers, and passes the
// lead on.
func (g *GroupCommit) lead(db *sql.DB, w *pendingWrite) error {
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
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
			}
			t.Stop()
		}
	}
	g.mu.Lock()
	// w and the oldest others, but none that leads a batch of its own:
	// with several leaders, w need not be first.
	batch := []*pendingWrite{w}
	g.pending = slices.DeleteFunc(g.pending, func(p *pendingWrite) bool {
		if p == w {
			return true
		}
		if len(batch) < g.maxBatch && !p.led {
			batch = append(batch, p)
			return true
		}
		return false
	})
	g.mu.Unlock()

	if len(batch) > 1 {
		g.batches.Add(1)
	}
	errs := safeCommit(ctx, db, batch)
	for i, b := range batch[1:] {
		b.ready <- turn{err: errs[i+1]}
	}
	g.mu.Lock()
	passed := g.passLead()
	g.mu.Unlock()
	if passed {
		// The next leader is ready to run, but on this goroutine's
		// processor, behind the rest of this task's request: yield, so
		// that the one writer does not stand idle meanwhile. Measured at 16
		// clients, the writer was idle a quarter of the time without this.
		runtime.Gosched()
	}
	return errs[0]
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
