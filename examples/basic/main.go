package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/gleitzeit/gleitzeit/fxmodule"
	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// Store holds a file open from Initialize to Cleanup.
type Store struct {
	path string
	f    *os.File
}

func NewStore() *Store { return &Store{path: os.TempDir() + "/gleitzeit-basic.log"} }

func (s *Store) ID() string { return "store" }

func (s *Store) Initialize(context.Context) error {
	f, err := os.OpenFile(s.path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	s.f = f
	return nil
}

func (s *Store) Cleanup(context.Context) error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

// Cache is built from the store, so it depends on it: it is initialized
// after the store and cleaned up before it.
type Cache struct {
	store   *Store
	entries map[string]string
}

func NewCache(s *Store) *Cache { return &Cache{store: s} }

func (c *Cache) ID() string { return "cache" }

func (c *Cache) Initialize(context.Context) error {
	c.entries = make(map[string]string)
	return nil
}

// Cleanup writes what the cache holds to the store, which is still open.
func (c *Cache) Cleanup(context.Context) error {
	for k, v := range c.entries {
		if _, err := fmt.Fprintf(c.store.f, "%s=%s\n", k, v); err != nil {
			return err
		}
	}
	c.entries = nil
	return nil
}

// Ticker runs a goroutine from Initialize until Close.
type Ticker struct {
	stop chan struct{}
	done chan struct{}
}

func NewTicker() *Ticker { return &Ticker{} }

func (t *Ticker) ID() string { return "ticker" }

func (t *Ticker) Initialize(context.Context) error {
	t.stop, t.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(t.done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
			case <-t.stop:
				return
			}
		}
	}()
	return nil
}

func (t *Ticker) Close() {
	if t.stop != nil {
		close(t.stop)
		<-t.done
		t.stop = nil
	}
}

func main() {
	log, err := zap.NewDevelopment()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(run(log, os.Stdout))
}

// run starts the app, waits for SIGTERM or SIGINT, stops it, and prints
// the cleanup report to out. It returns the exit code.
func run(log *zap.Logger, out io.Writer) int {
	var reg *lifecycle.Registry
	app := fx.New(
		fx.Supply(log),
		fx.WithLogger(fxmodule.EventLogger),
		fxmodule.Module,
		fxmodule.Provide(NewStore),
		fxmodule.Provide(NewCache),
		fxmodule.Provide(NewTicker, lifecycle.Timeout(2*time.Second)),
		fx.Populate(&reg),
	)
	ctx, cancel := context.WithTimeout(context.Background(), app.StartTimeout())
	defer cancel()
	if err := app.Start(ctx); err != nil {
		log.Error("start failed", zap.Error(err))
		printReport(out, reg)
		return 1
	}
	// fx catches SIGTERM from the first call to Wait on: call it before
	// saying the program runs, or a SIGTERM sent on reading that line
	// would end the program without its cleanup.
	signals := app.Wait()
	log.Info("running; press Ctrl-C or send SIGTERM to stop")
	sig := <-signals
	log.Info("stopping", zap.Stringer("signal", sig.Signal))

	ctx, cancel = context.WithTimeout(context.Background(), app.StopTimeout())
	defer cancel()
	err := app.Stop(ctx)
	printReport(out, reg)
	if err != nil {
		return 1
	}
	return 0
}

func printReport(w io.Writer, reg *lifecycle.Registry) {
	if reg == nil {
		return
	}
	rep := reg.Report()
	fmt.Fprintf(w, "cleanup report: %d providers in %v\n", len(rep.Providers), rep.Duration.Round(time.Microsecond))
	for _, id := range rep.IDs() {
		o := rep.Providers[id]
		line := fmt.Sprintf("  %-8s %-9s %-8s %v", id, o.Result, o.Method, o.Duration.Round(time.Microsecond))
		if o.Err != nil {
			line += "  " + o.Err.Error()
		}
		fmt.Fprintln(w, line)
	}
}
