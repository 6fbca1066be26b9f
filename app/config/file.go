package config

import (
	"github.com/gleitzeit/gleitzeit/app/pool"
)

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
	MCP      *MCPTemplate     `json:"mcp,omitempty"`     // a remote server, and what the client offers, for mcp
	Pool     *PoolFile        `json:"pool,omitempty"`
	Restart  *RestartFile     `json:"restart,omitempty"`

	// Resolved by Load from Pool and Restart.
	Sizing      *pool.Sizing `json:"-"` // nil without pool:
	Supervision pool.Restart `json:"-"`
}

// MCPTemplate is an mcp template's remote server, if it has one instead of
// a child, and what its client offers the server.
type MCPTemplate struct {
	// URL, in place of process:, is an MCP server already running, reached
	// over MCP's Streamable HTTP transport: http or https.
	URL string `json:"url"`
	// Headers are sent with every request to URL. In a value, ${NAME} is
	// the service's environment variable NAME, read when an instance
	// starts, so that a token stays out of the file; Load fails if NAME is
	// not set.
	Headers map[string]string `json:"headers"`
	// Sampling, if set, answers the server's sampling/createMessage with
	// a chat of the service's own (a task, recorded as any other) and
	// declares sampling to the server; without it, sampling is not
	// declared and such requests are refused.
	Sampling *MCPSampling `json:"sampling,omitempty"`
	// Roots are directories the server may work in, offered as MCP roots
	// (file:// URIs): absolute paths, which Load checks are directories. A
	// server that asks for roots, and hides what needs them without,
	// gets these.
	Roots []string `json:"roots"`
}

// MCPSampling is how an mcp template's client answers its server's
// sampling requests: a chat on Protocol, an ollama template's (llm/v1 if
// empty), with Model, whatever model the server prefers.
type MCPSampling struct {
	Protocol string `json:"protocol"`
	Model    string `json:"model"`
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
