package app

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/gleitzeit/gleitzeit/lifecycle"
	"github.com/gleitzeit/gleitzeit/providers/sqldb"
)

// A task is "running" in the store only while some replica runs it. Each
// replica (each start of the service's process) has an id of its own and a
// row in gleitzeit_replicas that says until when it is known to run: its
// heartbeat moves that moment on every store.heartbeat. Every replica, as
// it starts and after every heartbeat, settles as "interrupted" the
// running tasks of the replicas whose moment has passed (killed, crashed,
// or cut off from the store for that long), and removes their rows. A
// replica that stops cleanly settles what it leaves running and removes
// its own row.
//
// Every time is the database's (now() on PostgreSQL, SQLite's 'now'), so
// that replicas whose clocks differ agree; and each row carries its own
// replica's lapse, so that replicas configured with different heartbeats
// do not take each other for dead.

// replicaLapse is how many heartbeats a replica may miss before the
// others take it for dead: one late or failed heartbeat is not a death.
const replicaLapse = 3

// replicaStatementTimeout bounds each of the heartbeat's statements: one
// that hangs must not hold the next heartbeat back for long.
func replicaStatementTimeout(every time.Duration) time.Duration {
	return min(max(every, time.Second), 5*time.Second)
}

// replicaClock is the database's time, in SQL: now, and now plus a number
// of seconds given as the statement's argument arg ("$2").
type replicaClock struct {
	now  string
	plus func(arg string) string
}

var replicaClocks = map[string]replicaClock{
	sqldb.Postgres: {now: `now()`, plus: func(arg string) string { return `now() + make_interval(secs => ` + arg + `)` }},
	// Fixed-width text, which sorts as time does.
	sqldb.SQLite: {
		now:  `strftime('%Y-%m-%d %H:%M:%f', 'now')`,
		plus: func(arg string) string { return `strftime('%Y-%m-%d %H:%M:%f', 'now', ` + arg + ` || ' seconds')` },
	},
}

// replica is this process's row in gleitzeit_replicas, its heartbeat and
// its sweep.
type replica struct {
	id, host string
	every    time.Duration
	log      *zap.Logger

	// inFlight holds the ids of the tasks this replica runs, from before
	// their first record until their answer: its own running tasks that
	// are not in it (an outcome the store could not take, a first record
	// that committed after its request gave up) are settled too.
	inFlight sync.Map

	db     *sql.DB
	clock  replicaClock
	cancel context.CancelFunc
	done   chan struct{}

	// A store out of reach fails every heartbeat and every sweep: each
	// failure is logged once per streak, and the first success after it
	// once. Only the heartbeat's goroutine (and open, before it starts)
	// reads and writes them.
	beatFailing, sweepFailing bool
	beats                     atomic.Int64 // heartbeats tried, for the tests
}

func newReplica(every time.Duration, log *zap.Logger) *replica {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return &replica{id: host + "-" + hex.EncodeToString(b), host: host, every: every, log: log}
}

// lapse is how long the replica's row says it runs after a heartbeat, in
// seconds, as the statements take it.
func (r *replica) lapse() float64 { return (replicaLapse * r.every).Seconds() }

// open registers the replica in the store, before it runs any task, and
// settles what dead replicas left running. Registering must succeed: a
// task of a replica without a row would be settled by the others while
// it runs. The sweep may fail: it is logged, and tried again.
func (r *replica) open(ctx context.Context, db *sql.DB, driver string) error {
	r.db, r.clock = db, replicaClocks[driver]
	if err := r.register(ctx); err != nil {
		return err
	}
	r.log.Info("task store: replica registered", zap.String("replica", r.id), zap.Duration("heartbeat", r.every),
		zap.Duration("lapse", replicaLapse*r.every))
	r.sweepAndLog(ctx)
	return nil
}

func (r *replica) register(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, replicaStatementTimeout(r.every))
	defer cancel()
	_, err := r.db.ExecContext(ctx, `INSERT INTO gleitzeit_replicas (id, host, started, expires) VALUES ($1, $2, `+
		r.clock.now+`, `+r.clock.plus("$3")+`)`, r.id, r.host, r.lapse())
	if err != nil {
		return fmt.Errorf("task store: register replica %s: %w", r.id, err)
	}
	return nil
}

// start beats and sweeps every interval, in a goroutine that stop ends.
func (r *replica) start() {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan struct{})
	go r.run(ctx)
}

func (r *replica) run(ctx context.Context) {
	defer close(r.done)
	t := time.NewTicker(r.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.beatAndLog(ctx)
		r.sweepAndLog(ctx)
	}
}

// beatAndLog beats, and logs the first failure of a streak and the first
// success after it.
func (r *replica) beatAndLog(ctx context.Context) {
	err := r.beat(ctx)
	r.beats.Add(1)
	switch {
	case ctx.Err() != nil:
	case err != nil && !r.beatFailing:
		r.beatFailing = true
		r.log.Warn("task store: heartbeat failed; other replicas settle this replica's running tasks as interrupted "+
			"if it stays silent", zap.String("replica", r.id), zap.Duration("lapse", replicaLapse*r.every), zap.String("error", lifecycle.Redact(err.Error())))
	case err == nil && r.beatFailing:
		r.beatFailing = false
		r.log.Info("task store: heartbeat works again", zap.String("replica", r.id))
	}
}

// beat moves the replica's lapse on. A row that is gone means another
// replica took this one for dead and settled its running tasks: it is
// registered again, and says so.
func (r *replica) beat(ctx context.Context) error {
	bounded, cancel := context.WithTimeout(ctx, replicaStatementTimeout(r.every))
	defer cancel()
	res, err := r.db.ExecContext(bounded, `UPDATE gleitzeit_replicas SET expires = `+r.clock.plus("$2")+` WHERE id = $1`, r.id, r.lapse())
	if err != nil {
		return fmt.Errorf("task store: heartbeat of replica %s: %w", r.id, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return err
	}
	r.log.Warn("task store: this replica's heartbeat lapsed, and other replicas settled its running tasks as interrupted; registered again",
		zap.String("replica", r.id), zap.Duration("lapse", replicaLapse*r.every))
	return r.register(ctx)
}

// sweepAndLog sweeps, and logs the first failure of a streak, the first
// success after it, and the tasks it settled.
func (r *replica) sweepAndLog(ctx context.Context) {
	n, err := r.sweep(ctx)
	switch {
	case ctx.Err() != nil:
		return
	case err != nil && !r.sweepFailing:
		r.sweepFailing = true
		r.log.Warn("task store: settling the tasks of dead replicas failed; it is tried again at the next heartbeat",
			zap.Int64("interrupted", n), zap.String("error", lifecycle.Redact(err.Error())))
	case err == nil && r.sweepFailing:
		r.sweepFailing = false
		r.log.Info("task store: settling the tasks of dead replicas works again")
	}
	if n > 0 {
		r.log.Warn("task store: tasks left running by replicas whose heartbeat lapsed were settled as interrupted",
			zap.Int64("interrupted", n))
	}
}

// sweep settles the running tasks of the replicas whose lapse has passed
// (or whose row is gone: another sweep removed it before a task it began
// was visible) and removes their rows; then this replica's own running
// tasks that it no longer runs. It returns how many tasks it settled.
// It never takes itself for dead: after a lapse of its own (a store out of
// reach for that long) its next heartbeat renews its row, and the others
// settle its tasks if it does not come back.
//
// One UPDATE settles the tasks, so concurrent sweeps settle each once: on
// PostgreSQL, a sweep that finds a row another is updating waits for it,
// then sees it no longer running and leaves it.
func (r *replica) sweep(ctx context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, replicaStatementTimeout(r.every))
	defer cancel()
	res, err := r.db.ExecContext(ctx, `UPDATE tasks SET status = 'interrupted',
		error = 'the replica running it (' || replica || ') stopped sending heartbeats (killed, crashed or cut off from the store): its outcome is unknown'
		WHERE status = 'running' AND replica IS NOT NULL AND replica <> $1
		AND (replica IN (SELECT id FROM gleitzeit_replicas WHERE expires < `+r.clock.now+`)
			OR replica NOT IN (SELECT id FROM gleitzeit_replicas))`, r.id)
	if err != nil {
		return 0, fmt.Errorf("task store: settle the tasks of dead replicas: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("task store: settle the tasks of dead replicas: %w", err)
	}
	if _, err := r.db.ExecContext(ctx, `DELETE FROM gleitzeit_replicas WHERE expires < `+r.clock.now+` AND id <> $1`, r.id); err != nil {
		return n, fmt.Errorf("task store: remove dead replicas: %w", err)
	}
	own, err := r.settleAbandoned(ctx)
	return n + own, err
}

// settleAbandoned settles this replica's running tasks that no request of
// it runs any more.
func (r *replica) settleAbandoned(ctx context.Context) (int64, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT id FROM tasks WHERE status = 'running' AND replica = $1`, r.id)
	if err != nil {
		return 0, fmt.Errorf("task store: read this replica's running tasks: %w", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			_ = rows.Close()
			return 0, fmt.Errorf("task store: read this replica's running tasks: %w", err)
		}
		ids = append(ids, id)
	}
	_ = rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("task store: read this replica's running tasks: %w", err)
	}
	var settled int64
	for _, id := range ids {
		if _, running := r.inFlight.Load(id); running {
			continue
		}
		res, err := r.db.ExecContext(ctx, `UPDATE tasks SET status = 'interrupted', error = $2 WHERE id = $1 AND status = 'running'`,
			id, "the replica running it ("+r.id+") could not record its outcome: it is unknown")
		if err != nil {
			return settled, fmt.Errorf("task store: settle task %s: %w", id, err)
		}
		if n, err := res.RowsAffected(); err == nil {
			settled += n
		}
	}
	return settled, nil
}

// running marks a task as run by this replica until done is called.
func (r *replica) running(id string) (done func()) {
	r.inFlight.Store(id, struct{}{})
	return func() { r.inFlight.Delete(id) }
}

// close stops the heartbeat, settles what the replica leaves running
// (every request has been answered by now) and removes its row, within
// ctx. A failure is logged: the others settle what is left once the
// replica's lapse has passed.
func (r *replica) close(ctx context.Context) {
	if r.cancel == nil {
		return
	}
	r.cancel()
	<-r.done
	if err := r.leave(ctx); err != nil {
		r.log.Warn("task store: this replica's row was not removed; other replicas remove it once its heartbeat lapses",
			zap.String("replica", r.id), zap.String("error", lifecycle.Redact(err.Error())))
	}
}

func (r *replica) leave(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, replicaStatementTimeout(r.every))
	defer cancel()
	_, err := r.db.ExecContext(ctx, `UPDATE tasks SET status = 'interrupted', error = $2 WHERE status = 'running' AND replica = $1`,
		r.id, "the replica running it ("+r.id+") stopped before it recorded the task's outcome: it is unknown")
	if err != nil {
		return fmt.Errorf("task store: settle this replica's running tasks: %w", err)
	}
	_, err = r.db.ExecContext(ctx, `DELETE FROM gleitzeit_replicas WHERE id = $1`, r.id)
	return err
}
