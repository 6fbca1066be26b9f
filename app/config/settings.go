package config

import (
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/gleitzeit/gleitzeit/app/pool"
	"github.com/gleitzeit/gleitzeit/providers/sqldb"
)

// Settings is the configuration, checked and resolved: every default
// filled in, every duration parsed. Load returns it; package app runs it.
type Settings struct {
	Addr            string
	AdminAddr       string // the admin API's and /metrics' own listener; empty: they are served on Addr
	DataDir         string
	AdminToken      string
	TaskToken       string // POST /v1/tasks and GET /v1/tasks/{id} need it as a bearer token; empty: open
	LogFormat       string
	LogLevel        zapcore.Level // debug, info, warn or error
	StoreDSN        string
	StoreBatchSize  int
	StoreBatchDelay time.Duration
	StoreRetention  time.Duration // 0: tasks are kept for ever
	StoreMaxConns   int           // a PostgreSQL store's pool; 0: sqldb's default
	StoreHeartbeat  time.Duration
	AuditPath       string
	AuditMaxBytes   int64
	AuditMaxFiles   int
	TaskTimeout     time.Duration
	HealthInterval  time.Duration
	ProviderTimeout time.Duration
	ShutdownTimeout time.Duration
	DrainDelay      time.Duration
	CleanupReserve  time.Duration
	Templates       map[string]Template
	Providers       []Instance
	// Migrate: upgrade the task store's schema to this build's, then exit
	// (-migrate), rather than run the service.
	Migrate bool
	// TimelinePath, if set, is where the service writes the SVG of its
	// start and stop as it exits (-timeline).
	TimelinePath string
}

// The ids of the providers the service always runs, besides those the
// configuration names: the task store and the audit log. No instance may
// take them.
const (
	StoreID = "store"
	AuditID = "audit"
)

// StoreConfig is the task store's pool, as the service and -migrate open
// it, and as Load checks it.
func (s *Settings) StoreConfig() sqldb.Config {
	return sqldb.Config{ID: StoreID, DSN: s.StoreDSN, MaxOpenConns: s.StoreMaxConns}
}

// Idle returns the templates, sorted, that no instance is given and no pool
// sizes: nothing serves their protocol until an instance is added through
// the admin API, so package app warns of them at start.
func (s *Settings) Idle() []string {
	used := map[string]bool{}
	for _, in := range s.Providers {
		used[in.Template] = true
	}
	var idle []string
	for name, t := range s.Templates {
		if !used[name] && t.Sizing == nil {
			idle = append(idle, name)
		}
	}
	slices.Sort(idle)
	return idle
}

// PoolOf reports whether id is named like an instance of one of the
// pools, and which: such ids are the pool's to give, so neither the
// configuration's providers nor one added through the admin API may take
// them.
func (s *Settings) PoolOf(id string) (template string, ok bool) {
	for name, t := range s.Templates {
		if t.Sizing == nil {
			continue
		}
		var n int
		if _, err := fmt.Sscanf(id, name+"-%d", &n); err == nil && pool.InstanceID(name, n) == id {
			return name, true
		}
	}
	return "", false
}
