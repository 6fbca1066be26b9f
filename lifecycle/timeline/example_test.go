package timeline_test

import (
	"context"
	"fmt"
	"io"

	"github.com/gleitzeit/gleitzeit/lifecycle"
	"github.com/gleitzeit/gleitzeit/lifecycle/timeline"
)

func ExampleOf() {
	reg := lifecycle.NewRegistry()
	_ = reg.Register(&prov{id: "db"})
	_ = reg.Register(&prov{id: "api"}, lifecycle.DependsOn("db"))
	_ = reg.Start(context.Background())
	_ = reg.Stop(context.Background())

	tl := timeline.Of(reg)
	// The stop runs the deepest first: api, then db once api has ended.
	for _, b := range tl.Stop.Bars {
		fmt.Printf("%s: depth %d, %s, critical %t\n", b.ID, b.Depth, b.Result, b.Critical)
	}
	// An HTTP handler would write it to its ResponseWriter.
	if err := tl.WriteSVG(io.Discard); err != nil {
		fmt.Println(err)
	}
	// Output:
	// api: depth 1, ok, critical true
	// db: depth 0, ok, critical true
}
