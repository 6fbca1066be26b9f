package app

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkPostTasks measures POST /v1/tasks on loopback: the whole path of
// a task (HTTP, routing, a lease, the provider's call, the store's commit
// and the audit line) from 8 clients per CPU. It reports the throughput and
// the p50 and p99 latency.
func BenchmarkPostTasks(b *testing.B) {
	cases := []struct{ name, body string }{
		{"echo over JSON-RPC", `{"protocol":"echo/v1","method":"echo","params":{"n":1}}`},
		{"llm version over HTTP", `{"protocol":"llm/v1","method":"version"}`},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			s := start(b, "")
			s.waitHealthy()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
			defer client.CloseIdleConnections()
			var (
				mu  sync.Mutex
				lat []time.Duration
			)
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				local := make([]time.Duration, 0, 4096)
				for pb.Next() {
					t0 := time.Now()
					resp, err := client.Post(s.base+"/v1/tasks", "application/json", strings.NewReader(bc.body))
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
			b.StopTimer()
			if len(lat) == 0 {
				return
			}
			slices.Sort(lat)
			b.ReportMetric(float64(len(lat))/b.Elapsed().Seconds(), "tasks/s")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}
