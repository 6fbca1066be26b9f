package lifecycle_test

import (
	"context"
	"fmt"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/gleitzeit/gleitzeit/lifecycle"
)

func ExampleWithTracerProvider() {
	rec := tracetest.NewSpanRecorder() // a real service batches to an exporter
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer func() { _ = tp.Shutdown(context.Background()) }()

	reg := lifecycle.NewRegistry(lifecycle.WithTracerProvider(tp))
	_ = reg.Register(newFake("db", new(journal)))
	_ = reg.Register(newFake("api", new(journal)), lifecycle.DependsOn("db"))
	_ = reg.Start(context.Background())
	_ = reg.Stop(context.Background())

	for _, s := range rec.Ended() {
		id := ""
		for _, kv := range s.Attributes() {
			if kv.Key == lifecycle.AttrProviderID {
				id = " " + kv.Value.AsString()
			}
		}
		fmt.Println(s.Name() + id)
	}
	// Output:
	// initialize db
	// initialize api
	// gleitzeit.start
	// cleanup api
	// cleanup db
	// gleitzeit.stop
}
