package fxmodule_test

import (
	"context"
	"fmt"

	"go.uber.org/fx"

	"github.com/gleitzeit/gleitzeit/fxmodule"
	"github.com/gleitzeit/gleitzeit/lifecycle"
)

type Pool struct{}

func NewPool() *Pool                           { return &Pool{} }
func (*Pool) ID() string                       { return "pool" }
func (*Pool) Initialize(context.Context) error { fmt.Println("pool: open"); return nil }
func (*Pool) Cleanup(context.Context) error    { fmt.Println("pool: closed"); return nil }

// Users is not a provider; it is built from the pool.
type Users struct{ pool *Pool }

func NewUsers(p *Pool) *Users { return &Users{p} }

// Mailer is a provider built from Users, so it depends on the pool.
type Mailer struct{ users *Users }

func NewMailer(u *Users) *Mailer                 { return &Mailer{u} }
func (*Mailer) ID() string                       { return "mailer" }
func (*Mailer) Initialize(context.Context) error { fmt.Println("mailer: connected"); return nil }
func (*Mailer) Cleanup(context.Context) error    { fmt.Println("mailer: flushed"); return nil }

func Example() {
	var reg *lifecycle.Registry
	app := fx.New(
		fx.NopLogger,
		fxmodule.Module,
		fxmodule.Provide(NewMailer), // order of declaration does not matter
		fx.Provide(NewUsers),
		fxmodule.Provide(NewPool),
		fx.Populate(&reg),
	)
	if err := app.Start(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	if err := app.Stop(context.Background()); err != nil {
		fmt.Println(err)
	}
	fmt.Println(reg.Report().Providers["mailer"].Result, reg.Report().Providers["pool"].Result)
	// Output:
	// pool: open
	// mailer: connected
	// mailer: flushed
	// pool: closed
	// ok ok
}

// Mailbox is what the mailer is used as.
type Mailbox interface{ Send(to string) }

func (*Mailer) Send(to string) { fmt.Println("mail to", to) }

// Tracing is a plain component with hooks of its own, which the pool is
// built from.
type Tracing struct{}

func NewTracing(lc fx.Lifecycle) *Tracing {
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error { fmt.Println("tracing: on"); return nil },
		OnStop:  func(context.Context) error { fmt.Println("tracing: off"); return nil },
	})
	return &Tracing{}
}

// Provide takes fx.Annotate, as fx.Provide does, and each provider keeps
// fx's order with plain components: the pool, built from tracing, is
// opened after tracing starts and closed before it stops.
func ExampleProvide() {
	app := fx.New(
		fx.NopLogger,
		fxmodule.Module,
		fx.Provide(NewTracing, NewUsers),
		fxmodule.Provide(func(*Tracing) *Pool { return NewPool() }),
		fxmodule.Provide(fx.Annotate(NewMailer, fx.As(new(Mailbox)))),
		fx.Invoke(func(m Mailbox) { m.Send("ops@example.com") }),
	)
	if err := app.Start(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	if err := app.Stop(context.Background()); err != nil {
		fmt.Println(err)
	}
	// Output:
	// mail to ops@example.com
	// tracing: on
	// pool: open
	// mailer: connected
	// mailer: flushed
	// pool: closed
	// tracing: off
}
