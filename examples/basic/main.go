// Command basic runs three providers, one depending on another, until it
// receives SIGINT or SIGTERM; then it stops them and prints the cleanup
// report.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// resource stands in for a real provider: it holds something from
// Initialize to Cleanup.
type resource struct {
	id   string
	held bool
}

func (r *resource) ID() string { return r.id }

func (r *resource) Initialize(context.Context) error {
	r.held = true
	return nil
}

func (r *resource) Cleanup(context.Context) error {
	r.held = false
	return nil
}

func main() {
	log, err := zap.NewDevelopment()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	reg := lifecycle.NewRegistry(lifecycle.WithLogger(log))
	for _, p := range []struct {
		r    *resource
		deps []string
	}{
		{&resource{id: "store"}, nil},
		{&resource{id: "cache"}, []string{"store"}},
		{&resource{id: "audit"}, nil},
	} {
		if err := reg.Register(p.r, lifecycle.DependsOn(p.deps...)); err != nil {
			log.Fatal("register", zap.Error(err))
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := reg.Start(ctx); err != nil {
		log.Fatal("start", zap.Error(err))
	}
	log.Info("running; press Ctrl-C or send SIGTERM to stop")
	<-ctx.Done()

	sctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	err = reg.Stop(sctx)
	printReport(reg.Report())
	if err != nil {
		os.Exit(1)
	}
}

func printReport(rep lifecycle.StopReport) {
	fmt.Printf("cleanup report (%v):\n", rep.Duration)
	ids := make([]string, 0, len(rep.Providers))
	for id := range rep.Providers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		o := rep.Providers[id]
		fmt.Printf("  %-8s %-9s %-8s %v\n", id, o.Result, o.Method, o.Duration)
	}
}
