package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"go.uber.org/fx"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/gleitzeit/gleitzeit/app/config"
	"github.com/gleitzeit/gleitzeit/app/pool"
	"github.com/gleitzeit/gleitzeit/app/taskstore"
	"github.com/gleitzeit/gleitzeit/lifecycle"
	"github.com/gleitzeit/gleitzeit/providers/process"
	"github.com/gleitzeit/gleitzeit/providers/sqldb"
)

// Exit codes of Main.
const (
	ExitOK     = 0 // stopped cleanly
	ExitFailed = 1 // a provider failed to clean up, or a second signal forced the exit
	ExitConfig = 2 // the configuration is wrong, or the task store's schema is not this build's (taskstore.SchemaError)
	ExitStore  = 3 // the task store could not be opened at start (unreachable, refused, or its directory not writable), or -migrate could not migrate it
	ExitStart  = 4 // the service could not start for another reason: a provider's Initialize, the listener, the data directory
)

// Main runs the service until SIGTERM or SIGINT, then shuts it down as a
// Kubernetes pod needs: readiness turns 503 at once, the drain delay
// passes, the admin server stops taking requests and finishes those in
// flight, then the providers are cleaned up, all within the shutdown
// timeout. A signal during the start cancels it and cleans up what was
// initialized, within the shutdown timeout (see cancelStartup). A second
// signal ends the wait at once, after logging the providers that had not
// finished. It returns the process's exit code.
func Main(args []string, getenv func(string) string, stderr io.Writer) int {
	s, err := config.Load(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK // -h: Load printed the usage
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return ExitConfig
	}
	log := newLogger(s.LogFormat, s.LogLevel, stderr)
	defer func() { _ = log.Sync() }()
	tp, err := NewTracerProvider(context.Background(), getenv, log)
	if err != nil {
		log.Error("cannot set up tracing", zap.Error(err))
		return ExitConfig
	}
	if tp != nil {
		log.Info("tracing", zap.String("exporter", getenv("OTEL_TRACES_EXPORTER")))
		defer flushTraces(log, tp)
	}
	if s.Migrate {
		return migrateStore(s, log)
	}
	for _, name := range s.Idle() {
		log.Warn("template has no instance and no pool: tasks for its protocol answer 503 until one is added",
			zap.String("template", name), zap.String("protocol", s.Templates[name].Protocol))
	}
	if err := os.MkdirAll(s.DataDir, 0o750); err != nil {
		log.Error("cannot create the data directory", zap.String("data_dir", s.DataDir), zap.Error(err))
		return ExitStart
	}
	if err := process.HideEnviron(); err != nil {
		log.Warn("child processes running as this user can read the service's environment", zap.Error(err))
	}
	if err := process.BecomeSubreaper(); err != nil {
		log.Warn("orphaned grandchildren of child processes will go to PID 1", zap.Error(err))
	}
	if !process.DiesWithService {
		log.Warn("child processes outlive this service if it crashes or is killed: only Linux kills them with it (Pdeathsig)",
			zap.String("os", runtime.GOOS))
	}

	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(signals)

	var (
		engine *Engine
		reg    *lifecycle.Registry
	)
	metrics := NewMetrics()
	app := fx.New(Options(s, log, metrics), Tracing(tp), fx.Populate(&engine, &reg),
		fx.StartTimeout(time.Minute), fx.StopTimeout(s.ShutdownTimeout))
	if err := app.Err(); err != nil {
		log.Error("cannot build the service", zap.Error(err))
		return ExitStart
	}
	startCtx, cancelStart := context.WithTimeout(context.Background(), app.StartTimeout())
	defer cancelStart()
	started := make(chan error, 1)
	go func() { started <- app.Start(startCtx) }()
	select {
	case err = <-started:
	case sig := <-signals:
		return cancelStartup(startup{s: s, log: log, app: app, reg: reg, engine: engine, started: started}, sig, signals)
	}
	if err != nil {
		code := ExitStart
		if _, ok := errors.AsType[*taskstore.SchemaError](err); ok {
			code = ExitConfig
			log.Error("cannot start the service", zap.Error(err))
		} else if cause, ok := initializeError(err, config.StoreID); ok {
			code = ExitStore
			log.Error("cannot open the task store", zap.String("store", lifecycle.Redact(engine.store.Target())), zap.String("error", lifecycle.Redact(cause.Error())))
		} else {
			log.Error("cannot start the service", zap.Error(err))
		}
		logReport(log, reg, engine, s.LogFormat == "console")
		writeTimeline(log, reg, s.TimelinePath)
		return code
	}
	log.Info("service started", zap.String("addr", s.Addr), zap.String("data_dir", s.DataDir))

	sig := <-signals
	begin := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), s.ShutdownTimeout)
	defer cancel()
	engine.BeginShutdown()
	log.Info("shutting down: readiness is now 503", zap.Stringer("signal", sig),
		zap.Duration("timeout", s.ShutdownTimeout), zap.Duration("drain_delay", s.DrainDelay))

	select {
	case <-time.After(s.DrainDelay): // load balancers take the pod out of rotation
	case <-ctx.Done():
	case sig := <-signals:
		return forced(log, reg, sig)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- app.Stop(ctx) }()
	select {
	case err = <-stopped:
	case sig := <-signals:
		return forced(log, reg, sig)
	}
	engine.awaitRemovals(ctx)
	logReport(log, reg, engine, s.LogFormat == "console")
	writeTimeline(log, reg, s.TimelinePath)
	if err != nil {
		log.Error("service stopped with errors", zap.Duration("duration", time.Since(begin)), zap.Error(err))
		return ExitFailed
	}
	log.Info("service stopped", zap.Duration("duration", time.Since(begin)))
	return ExitOK
}

// migrateStore upgrades the task store's schema to this build's (-migrate):
// what an operator runs once, before rolling out a build whose schema is
// newer. Reaching the database is bounded; the upgrade is not, since it
// takes seconds a million tasks, but SIGTERM or SIGINT ends it, rolled
// back.
func migrateStore(s *config.Settings, log *zap.Logger) int {
	store, err := sqldb.New(s.StoreConfig())
	if err != nil {
		log.Error("cannot open the task store", zap.Error(err))
		return ExitConfig
	}
	if store.Driver() == sqldb.SQLite {
		if err := os.MkdirAll(s.DataDir, 0o750); err != nil {
			log.Error("cannot create the data directory", zap.String("data_dir", s.DataDir), zap.Error(err))
			return ExitStore
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	connect, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := store.Initialize(connect); err != nil {
		log.Error("cannot open the task store", zap.String("store", lifecycle.Redact(store.Target())), zap.String("error", lifecycle.Redact(err.Error())))
		return ExitStore
	}
	defer func() { _ = store.Cleanup(context.Background()) }()
	db, err := store.DB()
	if err == nil {
		if found, tasks, perr := taskstore.PeekSchema(ctx, db, store.Driver()); perr == nil && found > 0 && found < taskstore.SchemaVersion {
			log.Info("task store: upgrading the schema; the tasks table stays locked meanwhile",
				zap.Int("from", found), zap.Int("to", taskstore.SchemaVersion), zap.Int64("tasks", tasks))
		}
		var found int
		found, err = taskstore.Migrate(ctx, db, store.Driver(), true)
		switch {
		case err != nil:
		case found == taskstore.SchemaVersion:
			log.Info("task store: the schema is this build's already", zap.Int("version", found), zap.String("store", store.Target()))
			return ExitOK
		case found == 0:
			// Not an upgrade: a mistyped DSN or data_dir shows here.
			log.Info("task store: the store was empty: schema created", zap.Int("version", taskstore.SchemaVersion), zap.String("store", store.Target()))
			return ExitOK
		default:
			log.Info("task store: schema migrated", zap.Int("from", found), zap.Int("to", taskstore.SchemaVersion), zap.String("store", store.Target()))
			return ExitOK
		}
	}
	log.Error("cannot migrate the task store", zap.Error(err))
	if _, ok := errors.AsType[*taskstore.SchemaError](err); ok {
		return ExitConfig
	}
	return ExitStore
}

// initializeError returns the cause of provider id's failed Initialize, if
// err, a start's error, holds one.
func initializeError(err error, id string) (error, bool) {
	if pe, ok := err.(*lifecycle.ProviderError); ok && pe.ProviderID == id && pe.Op == "initialize" {
		return pe.Err, true
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		if inner := u.Unwrap(); inner != nil {
			return initializeError(inner, id)
		}
	case interface{ Unwrap() []error }:
		for _, inner := range u.Unwrap() {
			if cause, ok := initializeError(inner, id); ok {
				return cause, true
			}
		}
	}
	return nil, false
}

// forced logs, on a second signal, the providers whose cleanup had not
// ended.
func forced(log *zap.Logger, reg *lifecycle.Registry, sig os.Signal) int {
	var unfinished []string
	for _, p := range reg.Providers() {
		if p.State != lifecycle.StateCleaned {
			unfinished = append(unfinished, p.ID+" ("+p.State.String()+")")
		}
	}
	log.Error("second signal: exiting now", zap.Stringer("signal", sig), zap.Strings("unfinished", unfinished))
	return ExitFailed
}

// logReport logs the cleanup report: every provider and what happened to
// it, and the instances removed while the service ran (scaled down,
// replaced after their child died, removed by hand), each with its
// cleanup's outcome. In JSON it is one line, for queries; in console
// format, where a person reads it, a line for the whole and one for each
// provider.
func logReport(log *zap.Logger, reg *lifecycle.Registry, e *Engine, console bool) {
	if reg == nil {
		return
	}
	rep := reg.Report()
	ids := rep.IDs()
	if console {
		log.Info("cleanup report", zap.Duration("duration", rep.Duration), zap.Int("providers", len(ids)))
		for _, id := range ids {
			log.Info("cleanup report: provider", zap.String("provider", id), zap.Inline(outcomeFields(rep.Providers[id])))
		}
		if e != nil {
			for _, r := range e.removals.all() {
				log.Info("cleanup report: removed while running", zap.String("provider", r.ID), zap.String("template", r.Template),
					zap.String("reason", r.Reason), zap.Time("at", r.At), zap.Inline(outcomeFields(r.Outcome)))
			}
		}
		return
	}
	fields := make([]zap.Field, 0, len(ids)+2)
	fields = append(fields, zap.Duration("duration", rep.Duration))
	for _, id := range ids {
		fields = append(fields, zap.Any(id, rep.Providers[id]))
	}
	if e != nil {
		if removed := e.removals.all(); len(removed) > 0 {
			fields = append(fields, zap.Array("removed_while_running", removalList(removed)))
		}
	}
	log.Info("cleanup report", fields...)
}

// outcomeFields are a cleanup's outcome as log fields.
type outcomeFields lifecycle.Outcome

func (o outcomeFields) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("method", o.Method)
	enc.AddString("result", o.Result.String())
	enc.AddDuration("duration", o.Duration)
	if o.Reason != "" {
		enc.AddString("reason", o.Reason)
	}
	if o.Err != nil {
		enc.AddString("error", lifecycle.Redact(o.Err.Error()))
	}
	if o.Late {
		enc.AddBool("late", true)
	}
	return nil
}

// removalList logs removals as objects: id, template, reason and the
// cleanup's outcome.
type removalList []pool.Removal

func (l removalList) MarshalLogArray(enc zapcore.ArrayEncoder) error {
	for _, r := range l {
		if err := enc.AppendObject(zapcore.ObjectMarshalerFunc(func(o zapcore.ObjectEncoder) error {
			o.AddString("id", r.ID)
			o.AddString("template", r.Template)
			o.AddString("reason", r.Reason)
			o.AddTime("at", r.At)
			return o.AddReflected("outcome", r.Outcome)
		})); err != nil {
			return err
		}
	}
	return nil
}

func newLogger(format string, level zapcore.Level, w io.Writer) *zap.Logger {
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	enc.EncodeDuration = zapcore.StringDurationEncoder
	var encoder zapcore.Encoder
	if format == "console" {
		enc.EncodeLevel = zapcore.CapitalLevelEncoder
		encoder = zapcore.NewConsoleEncoder(enc)
	} else {
		encoder = zapcore.NewJSONEncoder(enc)
	}
	return zap.New(zapcore.NewCore(encoder, zapcore.Lock(zapcore.AddSync(w)), level))
}
