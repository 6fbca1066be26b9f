package app

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gleitzeit/gleitzeit/internal/mcptest"
)

// BenchmarkTasks measures POST /v1/tasks on loopback, the whole path of a
// task (HTTP, routing, a lease, the provider's call, the two commits of
// its record and the audit line), with each record committed on its own
// (store.batch_size: 1) and with group commit (the default), at 1, 16 and
// 64 clients that each send a task as soon as the last is answered, and
// with group commit whose leader waits 500 µs for more records (what
// store.batch_delay's default of 0 was chosen against). It
// reports the throughput and the p50 and p99 latency. The task store is a
// SQLite file with synchronous=FULL: every answer waits for an fsync.
func BenchmarkTasks(b *testing.B) {
	protocols := []struct{ name, body string }{
		{"echo-jsonrpc", `{"protocol":"echo/v1","method":"echo","params":{"n":1}}`},
		{"llm-version-http", `{"protocol":"llm/v1","method":"version"}`},
	}
	commits := []struct{ name, store string }{
		{"per-task-commit", "store: {batch_size: 1}\n"},
		{"group-commit", ""},
		{"group-commit-delay-500us", "store: {batch_delay: 500us}\n"},
	}
	for _, p := range protocols {
		for _, c := range commits {
			b.Run(p.name+"/"+c.name, func(b *testing.B) {
				s := start(b, c.store)
				s.waitHealthy()
				for _, clients := range []int{1, 16, 64} {
					b.Run(fmt.Sprintf("clients-%d", clients), func(b *testing.B) { load(b, s.base, p.body, clients) })
				}
			})
		}
	}
}

// BenchmarkMCPTasks measures an MCP tools/call (server-everything's echo)
// through POST /v1/tasks, the server a child over stdio or a server
// already running over Streamable HTTP on loopback, at 1, 8 and 32
// clients: one instance, which takes 32 calls at once, as both transports
// allow. The task path around it is BenchmarkTasks's, with group commit.
func BenchmarkMCPTasks(b *testing.B) {
	body := `{"protocol":"mcp/v1","method":"tools/call","params":{"name":"echo","arguments":{"message":"bench"}}}`
	const pool = "pool: {min: 1, max: 1, per_instance: 32, queue: 64}"
	argv := mcptest.Everything(b)
	transports := []struct {
		name     string
		template func() string
	}{
		{"stdio", func() string {
			return fmt.Sprintf("  everything:\n    kind: mcp\n    process: {command: [%q, %q, %q], grace: 1s}\n    %s", argv[0], argv[1], argv[2], pool)
		}},
		{"streamable-http", func() string {
			srv := mcptest.EverythingHTTP(b)
			return fmt.Sprintf("  everything:\n    kind: mcp\n    mcp: {url: %q}\n    %s", srv.URL, pool)
		}},
	}
	for _, tr := range transports {
		b.Run(tr.name, func(b *testing.B) {
			s := startWith(b, tr.template(), "")
			s.waitHealthy()
			for _, clients := range []int{1, 8, 32} {
				b.Run(fmt.Sprintf("clients-%d", clients), func(b *testing.B) { load(b, s.base, body, clients) })
			}
		})
	}
}

// load sends b.N tasks from clients at once, each client sending its next
// as soon as its last is answered.
func load(b *testing.B, base, body string, clients int) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	defer client.CloseIdleConnections()
	var (
		left atomic.Int64
		mu   sync.Mutex
		lat  = make([]time.Duration, 0, b.N)
		wg   sync.WaitGroup
	)
	left.Store(int64(b.N))
	b.ResetTimer()
	for range clients {
		wg.Go(func() {
			local := make([]time.Duration, 0, b.N/clients+1)
			for left.Add(-1) >= 0 {
				t0 := time.Now()
				resp, err := client.Post(base+"/v1/tasks", "application/json", strings.NewReader(body))
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Errorf("status %d", resp.StatusCode)
					return
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		})
	}
	wg.Wait()
	b.StopTimer()
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(len(lat))/b.Elapsed().Seconds(), "tasks/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(0, "ns/op") // the latency is in p50 and p99: ns/op divides by tasks run at once
}
