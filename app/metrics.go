package app

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/gleitzeit/gleitzeit/app/pool"
	"github.com/gleitzeit/gleitzeit/app/taskstore"
	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// Metrics are the service's Prometheus metrics, on a registry of their own.
// It is also the registry's Observer: cleanup durations arrive as events.
type Metrics struct {
	reg *prometheus.Registry

	tasks          *prometheus.CounterVec
	taskSeconds    *prometheus.HistogramVec
	cleanupSeconds *prometheus.HistogramVec
	health         *prometheus.GaugeVec
	expired        prometheus.Counter
	refused        *prometheus.CounterVec // see refusals.go

	registry atomic.Pointer[lifecycle.Registry]  // for leases, read at scrape time
	pools    atomic.Pointer[func() []pool.Stats] // for the pools, read at scrape time

	mu sync.Mutex // guards gone and the health series
	// gone holds the ids of providers removed at run time: a health poll
	// that began before the removal must not bring their series back.
	gone map[string]bool
}

var _ lifecycle.Observer = (*Metrics)(nil)

// NewMetrics builds the metrics, with Go's and the process's.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		tasks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gleitzeit_tasks_total", Help: "Tasks by protocol and outcome (ok, error, timeout, rejected).",
		}, []string{"protocol", "outcome"}),
		taskSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gleitzeit_task_duration_seconds", Help: "Time a task took, by protocol.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"protocol"}),
		cleanupSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gleitzeit_provider_cleanup_seconds", Help: "Time a provider's cleanup took, by provider and outcome.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}, []string{"provider", "outcome"}),
		health: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gleitzeit_provider_health", Help: "1 for each provider's current health status, 0 for the others.",
		}, []string{"provider", "status"}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gleitzeit_store_tasks_expired_total", Help: "Tasks this replica deleted from the store, older than store.retention.",
		}),
		gone: map[string]bool{},
	}
	m.reg.MustRegister(m.tasks, m.taskSeconds, m.cleanupSeconds, m.health, m.expired, leases{m}, pools{m},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.refused = newRefusals(m.reg)
	return m
}

// Registry is the Prometheus registry to serve.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

func (m *Metrics) watch(r *lifecycle.Registry, stats func() []pool.Stats) {
	m.registry.Store(r)
	m.pools.Store(&stats)
}

// Observe records each provider's cleanup.
func (m *Metrics) Observe(e lifecycle.Event) {
	switch e := e.(type) {
	case lifecycle.ProviderRegistered:
		m.mu.Lock()
		delete(m.gone, e.ID) // an id taken again
		m.mu.Unlock()
	case lifecycle.ProviderCleaned:
		m.cleanupSeconds.WithLabelValues(e.ID, e.Outcome.Result.String()).Observe(e.Outcome.Duration.Seconds())
		m.mu.Lock()
		defer m.mu.Unlock()
		if e.Trigger == lifecycle.TriggerUnregister {
			m.gone[e.ID] = true
			m.health.DeletePartialMatch(prometheus.Labels{"provider": e.ID})
		}
	}
}

func (m *Metrics) observeTask(r taskstore.Record) {
	m.tasks.WithLabelValues(r.Protocol, r.Status).Inc()
	m.taskSeconds.WithLabelValues(r.Protocol).Observe(r.DurationMS / 1000)
}

var statuses = []lifecycle.Status{lifecycle.StatusUnknown, lifecycle.StatusHealthy, lifecycle.StatusDegraded, lifecycle.StatusUnhealthy}

func (m *Metrics) observeHealth(rep lifecycle.HealthReport) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, h := range rep.Providers {
		if m.gone[id] {
			continue
		}
		for _, s := range statuses {
			v := 0.0
			if s == h.Status {
				v = 1
			}
			m.health.WithLabelValues(id, s.String()).Set(v)
		}
	}
}

// leases reports the leases in use per provider, read from the registry at
// scrape time.
type leases struct{ m *Metrics }

var leasesDesc = prometheus.NewDesc("gleitzeit_leases_in_use", "Leases held on each provider: tasks running on it.", []string{"provider"}, nil)

func (l leases) Describe(ch chan<- *prometheus.Desc) { ch <- leasesDesc }

func (l leases) Collect(ch chan<- prometheus.Metric) {
	r := l.m.registry.Load()
	if r == nil {
		return
	}
	for _, p := range r.Providers() {
		ch <- prometheus.MustNewConstMetric(leasesDesc, prometheus.GaugeValue, float64(p.Leases), p.ID)
	}
}

// pools reports each pool's size, queue, scale events and restarts, read
// from the pools at scrape time: counters that the pools keep, exported as
// they stand.
type pools struct{ m *Metrics }

var (
	poolSizeDesc = prometheus.NewDesc("gleitzeit_pool_size",
		"Instances of a pool that take tasks or are starting.", []string{"template"}, nil)
	poolQueueDesc = prometheus.NewDesc("gleitzeit_pool_queue_depth",
		"Tasks waiting for an instance of a pool.", []string{"template"}, nil)
	poolScaleDesc = prometheus.NewDesc("gleitzeit_pool_scale_events_total",
		"Times a pool grew (up) or shrank (down).", []string{"template", "direction"}, nil)
	restartsDesc = prometheus.NewDesc("gleitzeit_provider_restarts_total",
		"Replacements started for instances of a template whose child exited.", []string{"template"}, nil)
)

func (p pools) Describe(ch chan<- *prometheus.Desc) {
	ch <- poolSizeDesc
	ch <- poolQueueDesc
	ch <- poolScaleDesc
	ch <- restartsDesc
}

func (p pools) Collect(ch chan<- prometheus.Metric) {
	stats := p.m.pools.Load()
	if stats == nil {
		return
	}
	for _, s := range (*stats)() {
		ch <- prometheus.MustNewConstMetric(restartsDesc, prometheus.CounterValue, float64(s.Restarts), s.Template)
		if !s.Sized {
			continue
		}
		ch <- prometheus.MustNewConstMetric(poolSizeDesc, prometheus.GaugeValue, float64(s.Size), s.Template)
		ch <- prometheus.MustNewConstMetric(poolQueueDesc, prometheus.GaugeValue, float64(s.QueueDepth), s.Template)
		ch <- prometheus.MustNewConstMetric(poolScaleDesc, prometheus.CounterValue, float64(s.ScaleUps), s.Template, "up")
		ch <- prometheus.MustNewConstMetric(poolScaleDesc, prometheus.CounterValue, float64(s.ScaleDowns), s.Template, "down")
	}
}
