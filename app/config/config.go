package config

import (
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"
	"sigs.k8s.io/yaml"

	"github.com/gleitzeit/gleitzeit/app/pool"
	"github.com/gleitzeit/gleitzeit/lifecycle"
	"github.com/gleitzeit/gleitzeit/providers/ollama"
)

//go:embed defaults.yaml
var defaultsYAML []byte

// File is the configuration as written: in defaults.yaml, in the file given
// with -config (YAML or JSON), in the environment and in flags. Durations
// are strings until Load checks them, so that an error can name the field.
type File struct {
	Addr            string              `json:"addr"`
	AdminAddr       string              `json:"admin_addr"`
	DataDir         string              `json:"data_dir"`
	AdminToken      string              `json:"admin_token"`
	TaskToken       string              `json:"task_token"`
	LogFormat       string              `json:"log_format"`
	LogLevel        string              `json:"log_level"`
	Store           StoreFile           `json:"store"`
	Audit           AuditFile           `json:"audit"`
	TaskTimeout     string              `json:"task_timeout"`
	HealthInterval  string              `json:"health_interval"`
	ProviderTimeout string              `json:"provider_timeout"`
	Shutdown        ShutdownFile        `json:"shutdown"`
	Templates       map[string]Template `json:"templates"`
	Providers       []Instance          `json:"providers"`

	// ollamaURL is the URL -ollama-url or GLEITZEIT_OLLAMA_URL gave the
	// template named ollama, and ollamaURLFrom which of them (see
	// pointOllama).
	ollamaURL, ollamaURLFrom string
}

// StoreFile configures the task store.
type StoreFile struct {
	DSN string `json:"dsn"`
	// BatchSize and BatchDelay bound group commit: the records of
	// concurrent tasks commit together, up to BatchSize in one transaction,
	// the first waiting up to BatchDelay for the others. A batch size of 1
	// commits each record on its own.
	BatchSize  *int   `json:"batch_size"`
	BatchDelay string `json:"batch_delay"`
	// Retention is how long a task is kept: older ones are deleted
	// ("0s": kept for ever).
	Retention string `json:"retention"`
	// Heartbeat is how often a replica tells the store it runs: the tasks
	// of one silent for 3 heartbeats are settled as interrupted (package
	// app's replicas).
	Heartbeat string `json:"heartbeat"`
	// MaxConns bounds a PostgreSQL store's pool (sqldb's default, 10, if
	// not set): every replica's pool, and those of pods shutting down,
	// share the server's max_connections.
	MaxConns *int `json:"max_conns"`
}

// AuditFile configures the audit log. MaxBytes rotates it by size (0: never);
// MaxFiles is how many rotated files are kept.
type AuditFile struct {
	Path     string `json:"path"`
	MaxBytes *int64 `json:"max_bytes"`
	MaxFiles *int   `json:"max_files"`
}

// ShutdownFile configures the shutdown.
type ShutdownFile struct {
	Timeout    string `json:"timeout"`
	DrainDelay string `json:"drain_delay"`
	// CleanupReserve is the part of Timeout kept for the engine's stop and
	// the providers' cleanup, which no request can use up; by default the
	// longest provider timeout plus a second.
	CleanupReserve string `json:"cleanup_reserve"`
}

// Template is a kind of provider the service can run: the only thing the
// admin API can instantiate, so that no URL or command line arrives over
// HTTP.
type Template struct {
	Kind     string           `json:"kind"` // "ollama", "process" or "mcp"
	Protocol string           `json:"protocol"`
	Critical bool             `json:"critical"` // readiness needs it healthy
	Timeout  string           `json:"timeout"`  // its Initialize and cleanup; provider_timeout if empty
	Ollama   *OllamaTemplate  `json:"ollama,omitempty"`
	Process  *ProcessTemplate `json:"process,omitempty"` // the child, for process and mcp
	Pool     *PoolFile        `json:"pool,omitempty"`
	Restart  *RestartFile     `json:"restart,omitempty"`

	// Resolved by Load from Pool and Restart.
	Sizing      *pool.Sizing `json:"-"` // nil without pool:
	Supervision pool.Restart `json:"-"`
}

// OllamaTemplate configures an Ollama provider.
type OllamaTemplate struct {
	URL string `json:"url"`
}

// ProcessTemplate configures a process provider.
type ProcessTemplate struct {
	Command      []string `json:"command"`
	Dir          string   `json:"dir"`
	Env          []string `json:"env"`         // KEY=VALUE: the child's own environment
	InheritEnv   []string `json:"inherit_env"` // names of the service's variables to pass on, besides PATH, HOME, LANG, TZ and TMPDIR
	Grace        string   `json:"grace"`
	ReadyMethod  string   `json:"ready_method"`
	HealthMethod string   `json:"health_method"`
}

// Instance is a provider to run at startup.
type Instance struct {
	ID       string `json:"id"`
	Template string `json:"template"`
}

// Settings is the configuration, checked and resolved.
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
}

// The group commit's defaults, measured (BENCHMARKS.md, "Task
// throughput"): records that arrive during a commit make the next batch,
// so no delay is needed for batches to form under load, and a task alone
// waits for nothing but its own commit.
const (
	defaultBatchSize  = 64
	defaultBatchDelay = 0
)

// The audit log's rotation: a log that grows without bound fills the
// volume of a pod that runs for months. 64 MiB a file and 5 rotated files
// bound it to 384 MiB, which a volume sized for the task store holds, and
// keep days of tasks at a few a second (a record is about 200 bytes).
const (
	defaultAuditMaxBytes = 64 << 20
	defaultAuditMaxFiles = 5
)

// defaultRetention keeps a task a week. The store answers "what became
// of task X" for the clients that sent it, who ask within minutes; a week
// also covers an incident looked into after a weekend. The audit log, not
// the store, is the long record. A busy service writes about 300 bytes a
// task: at 100 tasks a second, a week is some 18 GB, which a PostgreSQL
// volume holds; a service that needs less keeps less.
const defaultRetention = 7 * 24 * time.Hour

// The heartbeat's interval (store.heartbeat), by default and at least and
// at most: package app's replicas take one that missed 3 heartbeats for
// dead and settle its tasks. The default settles a killed replica's tasks
// within about 20 s (its lapse, 15 s, and at most one interval until
// another replica sweeps).
const (
	defaultHeartbeat = 5 * time.Second
	minHeartbeat     = 100 * time.Millisecond
	maxHeartbeat     = time.Minute
)

// minRetention is the shortest retention allowed, and how much longer than
// task_timeout it must be: a shorter one would delete tasks before their
// clients could look them up, or while they run.
const minRetention = time.Minute

// Error names a configuration field and what is wrong with it: the
// service exits 2 on it, before anything starts (see IsError).
type Error struct {
	Field   string
	Problem string
}

func (e *Error) Error() string { return fmt.Sprintf("config: %s: %s", e.Field, e.Problem) }

func bad(field, format string, args ...any) error {
	return &Error{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// The environment variables Load reads, each over the file's field, with
// what -h says of it.
var envFields = []struct {
	name, help string
	set        func(*File, string)
}{
	{"GLEITZEIT_ADDR", "addr: the server's host:port", func(f *File, v string) { f.Addr = v }},
	{"GLEITZEIT_ADMIN_ADDR", "admin_addr: the admin API's and /metrics' own host:port", func(f *File, v string) { f.AdminAddr = v }},
	{"GLEITZEIT_DATA_DIR", "data_dir: the task store's and the audit log's directory", func(f *File, v string) { f.DataDir = v }},
	{"GLEITZEIT_ADMIN_TOKEN", "admin_token: the bearer token of the mutating admin endpoints", func(f *File, v string) { f.AdminToken = v }},
	{"GLEITZEIT_TASK_TOKEN", "task_token: the bearer token of /v1/tasks", func(f *File, v string) { f.TaskToken = v }},
	{"GLEITZEIT_LOG_FORMAT", `log_format: "json" or "console"`, func(f *File, v string) { f.LogFormat = v }},
	{"GLEITZEIT_LOG_LEVEL", "log_level: debug, info, warn or error", func(f *File, v string) { f.LogLevel = v }},
	{"GLEITZEIT_STORE_DSN", "store.dsn: a postgres:// URL, or empty for SQLite in data_dir", func(f *File, v string) { f.Store.DSN = v }},
	{"GLEITZEIT_STORE_HEARTBEAT", "store.heartbeat: how often this replica tells the store it runs", func(f *File, v string) { f.Store.Heartbeat = v }},
	{"GLEITZEIT_AUDIT_PATH", "audit.path: the audit log's file", func(f *File, v string) { f.Audit.Path = v }},
	{"GLEITZEIT_TASK_TIMEOUT", "task_timeout: a task's deadline", func(f *File, v string) { f.TaskTimeout = v }},
	{"GLEITZEIT_SHUTDOWN_TIMEOUT", "shutdown.timeout: everything after SIGTERM", func(f *File, v string) { f.Shutdown.Timeout = v }},
	{"GLEITZEIT_DRAIN_DELAY", "shutdown.drain_delay: how long readiness is 503 before the listener closes", func(f *File, v string) { f.Shutdown.DrainDelay = v }},
	{ollamaURLEnv, "templates.ollama.ollama.url: the Ollama server of the template named ollama", func(f *File, v string) { f.ollamaURL, f.ollamaURLFrom = v, ollamaURLEnv }},
}

// ollamaURLEnv points the template named ollama, the default's, at an
// Ollama server without a file, as -ollama-url does.
const ollamaURLEnv = "GLEITZEIT_OLLAMA_URL"

// Idle returns the templates, sorted, that no instance is given and no pool
// sizes: nothing serves their protocol until an instance is added through
// the admin API.
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

// pointOllama sets the URL of the template named ollama, if -ollama-url or
// GLEITZEIT_OLLAMA_URL gave one: a file that names no such template has
// nothing for it to point.
func (f *File) pointOllama() error {
	if f.ollamaURL == "" {
		return nil
	}
	t, ok := f.Templates["ollama"]
	if !ok || t.Kind != "ollama" {
		return bad(f.ollamaURLFrom, "there is no template named ollama of kind ollama to point at %s: the configuration file's templates replace the default's", lifecycle.Redact(f.ollamaURL))
	}
	if _, err := ollama.New(ollama.Config{ID: "ollama", URL: f.ollamaURL, Protocol: "llm/v1"}); err != nil {
		return bad(f.ollamaURLFrom, "%s", lifecycle.Redact(trimOwner(err.Error())))
	}
	o := OllamaTemplate{}
	if t.Ollama != nil {
		o = *t.Ollama
	}
	o.URL = f.ollamaURL
	t.Ollama = &o
	f.Templates["ollama"] = t
	return nil
}

// usage is what -h prints: the program as it was called, its flags, and
// the environment variables.
func usage(fs *flag.FlagSet) func() {
	return func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: %s [flags]\n\nRuns the service until SIGTERM or SIGINT. Settings come from the embedded defaults, then -config's file, then the environment, then the flags.\n\nFlags:\n", fs.Name())
		fs.PrintDefaults()
		fmt.Fprintf(w, "\nEnvironment:\n")
		for _, e := range envFields {
			fmt.Fprintf(w, "  %s\n    \t%s\n", e.name, e.help)
		}
	}
}

// Load reads the configuration: the embedded defaults, then the file named
// by -config, then the environment (GLEITZEIT_ADDR, GLEITZEIT_DATA_DIR,
// GLEITZEIT_ADMIN_TOKEN, GLEITZEIT_TASK_TOKEN, ...), then the flags. Any error names the field
// and the problem; -h prints the usage to stderr and returns flag.ErrHelp.
func Load(args []string, getenv func(string) string, stderr io.Writer) (*Settings, error) {
	fs := flag.NewFlagSet(filepath.Base(os.Args[0]), flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = usage(fs)
	path := fs.String("config", "", "configuration file, YAML or JSON")
	addr := fs.String("addr", "", "the server's address: tasks, health, and the admin API unless -admin-addr (default 127.0.0.1:8080)")
	adminAddr := fs.String("admin-addr", "", "the admin API's and /metrics' own address (default: served on -addr)")
	dataDir := fs.String("data-dir", "", "directory of the task store and the audit log (default ./data)")
	logFormat := fs.String("log-format", "", `"json" or "console"`)
	logLevel := fs.String("log-level", "", "debug, info, warn or error (default info)")
	shutdownTimeout := fs.String("shutdown-timeout", "", "everything after SIGTERM (default 25s)")
	drainDelay := fs.String("drain-delay", "", "how long readiness is 503 before the listener closes (default 0s)")
	taskTimeout := fs.String("task-timeout", "", "a task's deadline (default 60s)")
	ollamaURL := fs.String("ollama-url", "", "the Ollama server of the template named ollama (default http://localhost:11434)")
	migrate := fs.Bool("migrate", false, "upgrade the task store's schema to this build's, then exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err // usage printed it
		}
		return nil, &Error{Field: "flags", Problem: err.Error()}
	}
	if fs.NArg() > 0 {
		return nil, bad("flags", "unexpected argument %q", fs.Arg(0))
	}
	var empty error
	fs.Visit(func(fl *flag.Flag) { // given, but empty: not the same as not given
		if fl.Value.String() == "" && empty == nil {
			empty = bad("-"+fl.Name, "empty")
		}
	})
	if empty != nil {
		return nil, empty
	}

	var f File
	if err := yaml.UnmarshalStrict(defaultsYAML, &f); err != nil {
		return nil, fmt.Errorf("embedded defaults: %w", err) // a bug: the tests read them
	}
	if *path != "" {
		data, err := os.ReadFile(*path)
		if err != nil {
			return nil, bad("-config", "%v", err)
		}
		// The file replaces the default providers and templates, rather than
		// adding to them: what it names is what runs.
		f.Templates, f.Providers = nil, nil
		if err := yaml.UnmarshalStrict(data, &f); err != nil {
			if field := unknownField(data); field != "" {
				return nil, bad(field, "unknown field %q in %s", field[strings.LastIndexAny(field, ".]")+1:], *path)
			}
			return nil, bad(*path, "%s", cleanYAMLError(err))
		}
	}
	for _, e := range envFields {
		if v := getenv(e.name); v != "" {
			e.set(&f, v)
		}
	}
	for _, fl := range []struct {
		v   string
		set func(string)
	}{
		{*addr, func(v string) { f.Addr = v }},
		{*adminAddr, func(v string) { f.AdminAddr = v }},
		{*dataDir, func(v string) { f.DataDir = v }},
		{*logFormat, func(v string) { f.LogFormat = v }},
		{*logLevel, func(v string) { f.LogLevel = v }},
		{*shutdownTimeout, func(v string) { f.Shutdown.Timeout = v }},
		{*drainDelay, func(v string) { f.Shutdown.DrainDelay = v }},
		{*taskTimeout, func(v string) { f.TaskTimeout = v }},
		{*ollamaURL, func(v string) { f.ollamaURL, f.ollamaURLFrom = v, "-ollama-url" }},
	} {
		if fl.v != "" {
			fl.set(fl.v)
		}
	}
	if err := f.pointOllama(); err != nil {
		return nil, err
	}
	s, err := f.resolve()
	if err != nil {
		return nil, err
	}
	s.Migrate = *migrate
	return s, nil
}

// cleanYAMLError drops the decoding layers sigs.k8s.io/yaml names in its
// errors, keeping what a person needs: the field and the problem.
func cleanYAMLError(err error) string {
	msg := err.Error()
	for _, prefix := range []string{"error unmarshaling JSON: ", "while decoding JSON: ", "json: "} {
		msg = strings.ReplaceAll(msg, prefix, "")
	}
	return msg
}

// resolve checks every field and fills in what defaults from other fields.
func (f *File) resolve() (*Settings, error) {
	s := &Settings{Addr: f.Addr, AdminAddr: f.AdminAddr, DataDir: f.DataDir, AdminToken: f.AdminToken, TaskToken: f.TaskToken, LogFormat: f.LogFormat,
		StoreDSN: f.Store.DSN, AuditPath: f.Audit.Path, Templates: f.Templates, Providers: f.Providers}
	if _, port, err := net.SplitHostPort(s.Addr); err != nil || port == "" {
		return nil, bad("addr", "want host:port, got %q", s.Addr)
	}
	if err := checkAdminAddr(s.Addr, s.AdminAddr); err != nil {
		return nil, err
	}
	if s.DataDir == "" {
		return nil, bad("data_dir", "empty")
	}
	if s.LogFormat != "json" && s.LogFormat != "console" {
		return nil, bad("log_format", `want "json" or "console", got %q`, s.LogFormat)
	}
	switch f.LogLevel {
	case "debug", "info", "warn", "error":
		_ = s.LogLevel.Set(f.LogLevel)
	default:
		return nil, bad("log_level", `want "debug", "info", "warn" or "error", got %s`, quote(f.LogLevel))
	}
	if s.StoreDSN == "" {
		s.StoreDSN = filepath.Join(s.DataDir, "gleitzeit.db")
	}
	s.StoreBatchSize, s.StoreBatchDelay = defaultBatchSize, defaultBatchDelay
	if f.Store.BatchSize != nil {
		if *f.Store.BatchSize < 1 || *f.Store.BatchSize > 4096 {
			return nil, bad("store.batch_size", "want 1 to 4096 records in one commit, got %d", *f.Store.BatchSize)
		}
		s.StoreBatchSize = *f.Store.BatchSize
	}
	if f.Store.BatchDelay != "" {
		d, err := duration("store.batch_delay", f.Store.BatchDelay, true)
		if err != nil {
			return nil, err
		}
		if d > time.Second {
			return nil, bad("store.batch_delay", "want at most 1s: every task waits for it, got %v", d)
		}
		s.StoreBatchDelay = d
	}
	if f.Store.MaxConns != nil {
		if *f.Store.MaxConns < 2 || *f.Store.MaxConns > 1000 {
			return nil, bad("store.max_conns", "want 2 to 1000 connections (half commit task records, the rest read), got %d", *f.Store.MaxConns)
		}
		s.StoreMaxConns = *f.Store.MaxConns
	}
	s.StoreRetention = defaultRetention
	if f.Store.Retention != "" {
		d, err := duration("store.retention", f.Store.Retention, true)
		if err != nil {
			return nil, err
		}
		if d > 0 && d < minRetention {
			return nil, bad("store.retention", "want 0s (keep every task) or at least %v, got %v", minRetention, d)
		}
		s.StoreRetention = d
	}
	s.StoreHeartbeat = defaultHeartbeat
	if f.Store.Heartbeat != "" {
		d, err := duration("store.heartbeat", f.Store.Heartbeat, false)
		if err != nil {
			return nil, err
		}
		if d < minHeartbeat || d > maxHeartbeat {
			return nil, bad("store.heartbeat", "want %v to %v, got %v", minHeartbeat, maxHeartbeat, d)
		}
		s.StoreHeartbeat = d
	}
	if s.AuditPath == "" {
		s.AuditPath = filepath.Join(s.DataDir, "audit.jsonl")
	}
	s.AuditMaxBytes, s.AuditMaxFiles = defaultAuditMaxBytes, defaultAuditMaxFiles
	if f.Audit.MaxBytes != nil {
		if *f.Audit.MaxBytes < 0 {
			return nil, bad("audit.max_bytes", "want a size in bytes, or 0 never to rotate, got %d", *f.Audit.MaxBytes)
		}
		s.AuditMaxBytes = *f.Audit.MaxBytes
	}
	if f.Audit.MaxFiles != nil {
		if *f.Audit.MaxFiles < 1 || *f.Audit.MaxFiles > 1000 {
			return nil, bad("audit.max_files", "want 1 to 1000 rotated files kept, got %d", *f.Audit.MaxFiles)
		}
		s.AuditMaxFiles = *f.Audit.MaxFiles
	}
	for _, d := range []struct {
		field string
		in    string
		out   *time.Duration
		zero  bool // zero is allowed
	}{
		{"task_timeout", f.TaskTimeout, &s.TaskTimeout, false},
		{"health_interval", f.HealthInterval, &s.HealthInterval, false},
		{"provider_timeout", f.ProviderTimeout, &s.ProviderTimeout, false},
		{"shutdown.timeout", f.Shutdown.Timeout, &s.ShutdownTimeout, false},
		{"shutdown.drain_delay", f.Shutdown.DrainDelay, &s.DrainDelay, true},
	} {
		v, err := duration(d.field, d.in, d.zero)
		if err != nil {
			return nil, err
		}
		*d.out = v
	}
	if s.StoreRetention > 0 && s.StoreRetention-minRetention < s.TaskTimeout { // no overflow: retention >= minRetention
		// A task is recorded "running" as it begins and updated when it
		// ends: deleted in between, its outcome could not be recorded, and
		// a task that ran would be answered 503.
		return nil, bad("store.retention", "%v does not outlast a task: want at least task_timeout (%v) + %v", s.StoreRetention, s.TaskTimeout, minRetention)
	}
	if s.DrainDelay >= s.ShutdownTimeout {
		return nil, bad("shutdown.drain_delay", "%v leaves nothing of shutdown.timeout (%v) to stop the service", s.DrainDelay, s.ShutdownTimeout)
	}
	names := make([]string, 0, len(s.Templates))
	for name := range s.Templates {
		names = append(names, name)
	}
	slices.Sort(names)
	longest := s.ProviderTimeout
	for _, name := range names {
		t, err := checkTemplate("templates."+name, s.Templates[name])
		if err != nil {
			return nil, err
		}
		if err := checkUnhealthyAfter("templates."+name, &t, s.HealthInterval); err != nil {
			return nil, err
		}
		s.Templates[name] = t
		if t.Sizing != nil && t.Sizing.QueueTimeout >= s.TaskTimeout {
			return nil, bad("templates."+name+".pool.queue_timeout", "%v is not shorter than task_timeout (%v): the task's own deadline would end every longer wait", t.Sizing.QueueTimeout, s.TaskTimeout)
		}
		if t.Timeout != "" {
			d, _ := time.ParseDuration(t.Timeout) // checked above
			longest = max(longest, d)
		}
	}
	if f.Shutdown.CleanupReserve != "" {
		d, err := duration("shutdown.cleanup_reserve", f.Shutdown.CleanupReserve, false)
		if err != nil {
			return nil, err
		}
		s.CleanupReserve = d
	}
	if err := s.checkReserve(f.Shutdown.CleanupReserve != "", longest); err != nil {
		return nil, err
	}
	if err := s.checkProviders(names); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for i, p := range s.Providers {
		field := fmt.Sprintf("providers[%d]", i)
		switch {
		case !ValidID(p.ID):
			return nil, bad(field+".id", "want lowercase letters, digits, '.', '_' or '-', got %q", p.ID)
		case seen[p.ID] || p.ID == StoreID || p.ID == AuditID:
			return nil, bad(field+".id", "%q is used twice (store and audit are taken)", p.ID)
		case s.Templates[p.Template].Kind == "":
			return nil, bad(field+".template", "no template %q (have: %s)", p.Template, strings.Join(names, ", "))
		case s.Templates[p.Template].Sizing != nil:
			return nil, bad(field+".template", "template %q is a pool: it runs its own instances (%s); remove this entry", p.Template, pool.InstanceID(p.Template, 1))
		}
		if name, ok := s.PoolOf(p.ID); ok {
			return nil, bad(field+".id", "%q is named like an instance of the pool %q: those names are the pool's", p.ID, name)
		}
		seen[p.ID] = true
	}
	return s, nil
}

// checkAdminAddr checks admin_addr: empty, or host:port other than addr's.
func checkAdminAddr(addr, adminAddr string) error {
	if adminAddr == "" {
		return nil
	}
	_, port, err := net.SplitHostPort(adminAddr)
	if err != nil || port == "" {
		return bad("admin_addr", "want host:port, or empty to serve the admin API on addr, got %q", adminAddr)
	}
	if adminAddr == addr && port != "0" {
		return bad("admin_addr", "%s is addr too: want a port of its own, or empty to serve the admin API on addr", adminAddr)
	}
	return nil
}

func duration(field, in string, zeroOK bool) (time.Duration, error) {
	d, err := time.ParseDuration(in)
	switch {
	case err != nil:
		return 0, bad(field, "want a duration such as 30s, got %q", in)
	case d < 0 && zeroOK:
		return 0, bad(field, "must not be negative, got %v", d)
	case d < 0 || d == 0 && !zeroOK:
		return 0, bad(field, "must be positive, got %v", d)
	}
	return d, nil
}

func checkTemplate(field string, t Template) (Template, error) {
	if t.Timeout != "" {
		if _, err := duration(field+".timeout", t.Timeout, false); err != nil {
			return t, err
		}
	}
	switch t.Kind {
	case "ollama":
		if t.Process != nil {
			return t, bad(field+".process", "set for an ollama template")
		}
		if t.Ollama == nil {
			t.Ollama = &OllamaTemplate{}
		}
		if t.Protocol == "" {
			t.Protocol = "llm/v1"
		}
	case "process", "mcp":
		if t.Kind == "mcp" && t.Protocol == "" {
			t.Protocol = "mcp/v1"
		}
		switch {
		case t.Ollama != nil:
			return t, bad(field+".ollama", "set for a %s template", t.Kind)
		case t.Process == nil || len(t.Process.Command) == 0:
			return t, bad(field+".process.command", "required")
		case t.Protocol == "":
			return t, bad(field+".protocol", "required for a process template (such as python/v1)")
		case t.Kind == "mcp" && t.Process.ReadyMethod != "":
			return t, bad(field+".process.ready_method", "set for an mcp template: its handshake is MCP's initialize")
		case t.Kind == "mcp" && t.Process.HealthMethod != "":
			return t, bad(field+".process.health_method", "set for an mcp template: its health check is MCP's ping")
		}
		if t.Process.Grace != "" {
			if _, err := duration(field+".process.grace", t.Process.Grace, false); err != nil {
				return t, err
			}
		}
		for i, kv := range t.Process.Env {
			if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
				return t, bad(fmt.Sprintf("%s.process.env[%d]", field, i), "want KEY=VALUE, got %q", lifecycle.Redact(kv))
			}
		}
		for i, name := range t.Process.InheritEnv {
			switch {
			case name == "" || strings.Contains(name, "="):
				return t, bad(fmt.Sprintf("%s.process.inherit_env[%d]", field, i), "want a variable's name, got %q", name)
			case strings.HasPrefix(name, "GLEITZEIT_"):
				return t, bad(fmt.Sprintf("%s.process.inherit_env[%d]", field, i), "%s is the service's own setting: a child never gets those", name)
			}
		}
	case "":
		return t, bad(field+".kind", `required: "ollama", "process" or "mcp"`)
	default:
		return t, bad(field+".kind", `want "ollama", "process" or "mcp", got %q`, t.Kind)
	}
	if !ValidName(t.Protocol) { // else no task could name it
		return t, bad(field+".protocol", "%s, got %s", NameRule, quote(t.Protocol))
	}
	sizing, err := resolveSizing(field+".pool", t.Pool)
	if err != nil {
		return t, err
	}
	if sizing != nil {
		if name := field[len("templates."):]; !ValidID(pool.InstanceID(name, sizing.Max)) {
			return t, bad(field, "a pool's template names its instances (%s): want lowercase letters, digits, '.', '_' or '-'", pool.InstanceID(name, 1))
		}
	}
	t.Sizing = sizing
	if t.Supervision, err = resolveRestart(field+".restart", t.Kind, t.Restart); err != nil {
		return t, err
	}
	return t, nil
}

// reserveMargin is what the default cleanup reserve adds to the longest
// provider timeout: up to a second to answer the tasks that the end of the
// HTTP shutdown cancelled (package app's answerGrace), and a second for the engine's
// stop and the report.
const reserveMargin = 2 * time.Second

// checkReserve fills in the cleanup reserve, unless it was given, with the
// longest provider timeout and reserveMargin, and refuses a reserve that
// leaves the drain and the HTTP shutdown nothing of shutdown.timeout.
func (s *Settings) checkReserve(given bool, longest time.Duration) error {
	if !given {
		s.CleanupReserve = longest + reserveMargin
		if s.DrainDelay+s.CleanupReserve >= s.ShutdownTimeout {
			return bad("shutdown.timeout", "%v cannot hold the drain delay (%v) and the cleanup reserve (%v: the longest provider timeout, %v, and 2s); raise it or set shutdown.cleanup_reserve",
				s.ShutdownTimeout, s.DrainDelay, s.CleanupReserve, longest)
		}
		return nil
	}
	if s.CleanupReserve == 0 || s.DrainDelay+s.CleanupReserve >= s.ShutdownTimeout {
		return bad("shutdown.cleanup_reserve", "want more than 0s and less than shutdown.timeout (%v) minus shutdown.drain_delay (%v), got %v",
			s.ShutdownTimeout, s.DrainDelay, s.CleanupReserve)
	}
	return nil
}

// IsError reports whether err is a configuration error, an *Error: what
// the service exits 2 on.
func IsError(err error) bool {
	_, ok := errors.AsType[*Error](err)
	return ok
}
