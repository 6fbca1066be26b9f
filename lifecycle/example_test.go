package lifecycle_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// pool stands in for a database pool: it holds connections from Initialize
// to Cleanup.
type pool struct{ open int }

func (p *pool) ID() string { return "db" }

func (p *pool) Initialize(context.Context) error { p.open = 4; return nil }

func (p *pool) Cleanup(context.Context) error {
	fmt.Printf("db: closing %d connections\n", p.open)
	p.open = 0
	return nil
}

// api uses the pool; its cleanup fails.
type api struct{}

func (api) ID() string { return "api" }

func (api) Shutdown(context.Context) error {
	fmt.Println("api: draining")
	return errors.New("2 requests cut off")
}

func ExampleRegistry() {
	r := lifecycle.NewRegistry(lifecycle.WithDefaultTimeout(5 * time.Second))
	_ = r.Register(&pool{})
	_ = r.Register(api{}, lifecycle.DependsOn("db"))

	if err := r.Start(context.Background()); err != nil {
		fmt.Println("start:", err)
		return
	}
	db, release, _ := r.Acquire(context.Background(), "db")
	fmt.Println("leased", db.ID())
	release()

	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	err := r.Stop(ctx) // api first: it depends on db
	fmt.Println("stop:", err)

	rep := r.Report()
	for _, id := range rep.IDs() {
		o := rep.Providers[id]
		fmt.Println(id, o.Method, o.Result)
	}
	// Output:
	// leased db
	// api: draining
	// db: closing 4 connections
	// stop: provider "api": cleanup: 2 requests cut off
	// api Shutdown error
	// db Cleanup ok
}

func ExampleRedact() {
	err := errors.New(`dial postgres://app:s3cret@db:5432/app: connection refused`)
	fmt.Println(lifecycle.Redact(err.Error()))
	fmt.Println(lifecycle.Redact("host=db user=app password=s3cret"))
	// Output:
	// dial postgres://app:xxxxx@db:5432/app: connection refused
	// host=db user=app password=xxxxx
}
