package config

import (
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zapcore"

	"github.com/gleitzeit/gleitzeit/app/pool"
)

func noEnv(string) string { return "" }

func TestDefaults(t *testing.T) {
	s, err := Load(nil, noEnv, &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:8080", s.Addr)
	assert.Equal(t, "./data", s.DataDir)
	assert.Equal(t, filepath.Join("data", "gleitzeit.db"), s.StoreDSN)
	assert.Equal(t, filepath.Join("data", "audit.jsonl"), s.AuditPath)
	assert.Equal(t, 25*time.Second, s.ShutdownTimeout)
	assert.Equal(t, time.Duration(0), s.DrainDelay)
	assert.Equal(t, 12*time.Second, s.CleanupReserve, "the longest provider timeout and 2s")
	assert.Equal(t, 60*time.Second, s.TaskTimeout)
	assert.Equal(t, 7*24*time.Hour, s.StoreRetention)
	assert.Equal(t, 5*time.Second, s.StoreHeartbeat)
	assert.False(t, s.Migrate)
	assert.Empty(t, s.AdminToken)
	require.Len(t, s.Providers, 1)
	assert.Equal(t, Instance{ID: "ollama", Template: "ollama"}, s.Providers[0])
	tmpl := s.Templates["ollama"]
	assert.Equal(t, "http://localhost:11434", tmpl.Ollama.URL)
	assert.False(t, tmpl.Critical, "the service is ready without its LLM")
}

func write(t testing.TB, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

func TestFileEnvironmentAndFlagsOverride(t *testing.T) {
	yamlFile := write(t, "c.yaml", `
addr: 127.0.0.1:9000
data_dir: /var/lib/gleitzeit
store: {dsn: /var/lib/gleitzeit/file.db}
shutdown:
  timeout: 20s
templates:
  python:
    kind: process
    protocol: python/v1
    critical: true
    process:
      command: [python3, worker.py]
      grace: 2s
providers:
  - {id: py-1, template: python}
  - {id: py-2, template: python}
`)
	env := map[string]string{"GLEITZEIT_ADMIN_TOKEN": "t0ken", "GLEITZEIT_ADDR": "0.0.0.0:8081", "GLEITZEIT_DRAIN_DELAY": "3s",
		"GLEITZEIT_STORE_DSN": "postgres://app:hunter2@db:5432/gleitzeit"}
	s, err := Load([]string{"-config", yamlFile, "-addr", "127.0.0.1:7000", "-task-timeout", "5s"},
		func(k string) string { return env[k] }, &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:7000", s.Addr, "a flag beats the environment, which beats the file")
	assert.Equal(t, "/var/lib/gleitzeit", s.DataDir)
	assert.Equal(t, "t0ken", s.AdminToken)
	assert.Equal(t, "postgres://app:hunter2@db:5432/gleitzeit", s.StoreDSN, "the environment's DSN beats the file's: deploy/overlays/replicated sets it from a Secret")
	assert.Equal(t, 20*time.Second, s.ShutdownTimeout)
	assert.Equal(t, 3*time.Second, s.DrainDelay)
	assert.Equal(t, 5*time.Second, s.TaskTimeout)
	assert.Len(t, s.Providers, 2)
	assert.NotContains(t, s.Templates, "ollama", "a file's templates replace the defaults")

	jsonFile := write(t, "c.json", `{"addr": "127.0.0.1:9001", "providers": []}`)
	s, err = Load([]string{"-config", jsonFile}, noEnv, &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:9001", s.Addr)
	assert.Empty(t, s.Providers)
}

// A bad configuration is an error that names the field and the problem.
func TestBadConfigurationNamesTheField(t *testing.T) {
	tests := []struct {
		name string
		file string
		args []string
		want string
	}{
		{"unknown field", "adr: 1.2.3.4:80\n", nil, `unknown field "adr"`},
		{"bad duration", "shutdown: {timeout: soon}\n", nil, `config: shutdown.timeout: want a duration such as 30s, got "soon"`},
		{"negative duration", "task_timeout: -1s\n", nil, "config: task_timeout: must be positive, got -1s"},
		{"drain delay too long", "shutdown: {timeout: 5s, drain_delay: 5s}\n", nil, "config: shutdown.drain_delay: 5s leaves nothing of shutdown.timeout (5s)"},
		{"bad address", "addr: localhost\n", nil, `config: addr: want host:port, got "localhost"`},
		{"unknown template", "templates: {t: {kind: ollama}}\nproviders: [{id: a, template: nope}]\n", nil, `config: providers[0].template: no template "nope" (have: t)`},
		{"bad id", "templates: {t: {kind: ollama}}\nproviders: [{id: Bad ID, template: t}]\n", nil, `config: providers[0].id: want lowercase letters`},
		{"duplicate id", "templates: {t: {kind: ollama}}\nproviders: [{id: a, template: t}, {id: a, template: t}]\n", nil, `config: providers[1].id: "a" is used twice`},
		{"reserved id", "templates: {t: {kind: ollama}}\nproviders: [{id: store, template: t}]\n", nil, `config: providers[0].id: "store" is used twice`},
		{"no kind", "templates: {t: {protocol: x}}\n", nil, `config: templates.t.kind: required`},
		{"unknown kind", "templates: {t: {kind: redis}}\n", nil, `config: templates.t.kind: want "ollama", "process" or "mcp", got "redis"`},
		{"process without command", "templates: {t: {kind: process, protocol: p/v1}}\n", nil, "config: templates.t.process.command: required"},
		{"process without protocol", "templates: {t: {kind: process, process: {command: [x]}}}\n", nil, "config: templates.t.protocol: required"},
		{"bad grace", "templates: {t: {kind: process, protocol: p, process: {command: [x], grace: forever}}}\n", nil, `config: templates.t.process.grace: want a duration`},
		{"reserve leaves nothing", "shutdown: {timeout: 10s, drain_delay: 2s, cleanup_reserve: 8s}\n", nil, "config: shutdown.cleanup_reserve: want more than 0s and less than shutdown.timeout (10s) minus shutdown.drain_delay (2s), got 8s"},
		{"providers outlast the shutdown", "provider_timeout: 30s\n", nil, "config: shutdown.timeout: 25s cannot hold the drain delay (0s) and the cleanup reserve (32s: the longest provider timeout, 30s, and 2s)"},
		{"a template outlasts the shutdown", "templates: {t: {kind: ollama, timeout: 40s}}\nproviders: []\n", nil, "the longest provider timeout, 40s"},
		{"typo inside a template", "templates: {o: {kind: ollama, critcal: true}}\nproviders: []\n", nil, `config: templates.o.critcal: unknown field "critcal"`},
		{"typo in a provider", "templates: {o: {kind: ollama}}\nproviders: [{id: a, template: o, tmpl: x}]\n", nil, `config: providers[0].tmpl: unknown field "tmpl"`},
		{"command not found", "templates: {t: {kind: process, protocol: p, process: {command: [no-such-program-here]}}}\nproviders: []\n", nil, `config: templates.t.process.command: command "no-such-program-here": exec: "no-such-program-here": executable file not found`},
		{"dir not a directory", "templates: {t: {kind: process, protocol: p, process: {command: [sh], dir: /no/such/dir}}}\nproviders: []\n", nil, `config: templates.t.process.dir: Config.Dir "/no/such/dir" is not a directory`},
		{"bad ollama url", "templates: {o: {kind: ollama, ollama: {url: \"ftp://x\"}}}\nproviders: []\n", nil, `config: templates.o.ollama.url: URL "ftp://x": scheme must be http or https`},
		{"bad dsn", "store: {dsn: \"postgres://u:hunter2@h:notaport/db\"}\n", nil, `config: store.dsn: PostgreSQL DSN`},
		{"empty data dir flag", "", []string{"-data-dir", ""}, `config: -data-dir: empty`},
		{"relative mcp root", "templates: {t: {kind: mcp, process: {command: [sh]}, mcp: {roots: [data]}}}\nproviders: []\n", nil, `config: templates.t.mcp.roots[0]: want an absolute path, got "data"`},
		{"missing mcp root", "templates: {t: {kind: mcp, process: {command: [sh]}, mcp: {roots: [/no/such/dir]}}}\nproviders: []\n", nil, `config: templates.t.mcp.roots[0]: stat /no/such/dir: no such file or directory`},
		{"mcp root a file", "templates: {t: {kind: mcp, process: {command: [sh]}, mcp: {roots: [/etc/passwd]}}}\nproviders: []\n", nil, `config: templates.t.mcp.roots[0]: /etc/passwd is not a directory`},
		{"mcp url and process", "templates: {t: {kind: mcp, process: {command: [sh]}, mcp: {url: \"http://h/mcp\"}}}\nproviders: []\n", nil, `config: templates.t.process: set beside mcp.url: a template's server is a child or a URL, not both`},
		{"mcp url not http", "templates: {t: {kind: mcp, mcp: {url: \"ftp://u:hunter2@h/mcp\"}}}\nproviders: []\n", nil, `config: templates.t.mcp.url: want http or https, got the scheme "ftp"`},
		{"mcp url without host", "templates: {t: {kind: mcp, mcp: {url: \"http:///mcp\"}}}\nproviders: []\n", nil, `config: templates.t.mcp.url: no host`},
		{"mcp headers without url", "templates: {t: {kind: mcp, process: {command: [sh]}, mcp: {headers: {A: b}}}}\nproviders: []\n", nil, `config: templates.t.mcp.headers: set without mcp.url`},
		{"mcp header name", "templates: {t: {kind: mcp, mcp: {url: \"http://h/mcp\", headers: {\"A B\": b}}}}\nproviders: []\n", nil, `config: templates.t.mcp.headers: "A B" is not a header's name`},
		{"mcp header variable unset", "templates: {t: {kind: mcp, mcp: {url: \"http://h/mcp\", headers: {Authorization: \"Bearer ${GLEITZEIT_TEST_NO_SUCH_VARIABLE}\"}}}}\nproviders: []\n", nil, `config: templates.t.mcp.headers.Authorization: names the environment variable GLEITZEIT_TEST_NO_SUCH_VARIABLE, which is not set`},
		{"mcp transport header", "templates: {t: {kind: mcp, mcp: {url: \"http://h/mcp\", headers: {mcp-session-id: fixed}}}}\nproviders: []\n", nil, `config: templates.t.mcp.headers.mcp-session-id: the transport sets it itself`},
		{"mcp transport header with _", "templates: {t: {kind: mcp, mcp: {url: \"http://h/mcp\", headers: {Mcp_Session_Id: fixed}}}}\nproviders: []\n", nil, `config: templates.t.mcp.headers.Mcp_Session_Id: the transport sets it itself`},
		{"mcp url not a url", "templates: {t: {kind: mcp, mcp: {url: \"http://u:hunter2@[::1/sk-secret\"}}}\nproviders: []\n", nil, `config: templates.t.mcp.url: not a URL`},
		{"mcp without process or url", "templates: {t: {kind: mcp}}\nproviders: []\n", nil, `config: templates.t.process.command: required, or mcp.url for a server already running`},
		{"sampling without model", "templates: {t: {kind: mcp, process: {command: [sh]}, mcp: {sampling: {}}}, o: {kind: ollama}}\nproviders: []\n", nil, `config: templates.t.mcp.sampling.model: required`},
		{"sampling on no protocol", "templates: {t: {kind: mcp, process: {command: [sh]}, mcp: {sampling: {model: m, protocol: llm/v2}}}, o: {kind: ollama}}\nproviders: []\n", nil, `config: templates.t.mcp.sampling.protocol: no template serves llm/v2`},
		{"sampling on a process", "templates: {t: {kind: mcp, process: {command: [sh]}, mcp: {sampling: {model: m, protocol: p/v1}}}, p: {kind: process, protocol: p/v1, process: {command: [sh]}}}\nproviders: []\n", nil, `config: templates.t.mcp.sampling.protocol: p/v1 is served by templates.p, a process template: sampling is an ollama chat`},
		{"mcp for a process template", "templates: {t: {kind: process, protocol: p, process: {command: [sh]}, mcp: {roots: [/tmp]}}}\nproviders: []\n", nil, `config: templates.t.mcp: set for a process template: it is an mcp template's`},
		{"bad child env", "templates: {t: {kind: process, protocol: p, process: {command: [x], env: [A=1, NOEQUALS]}}}\n", nil, `config: templates.t.process.env[1]: want KEY=VALUE, got "NOEQUALS"`},
		{"bad inherit_env", "templates: {t: {kind: process, protocol: p, process: {command: [x], inherit_env: [\"A=1\"]}}}\n", nil, `config: templates.t.process.inherit_env[0]: want a variable's name`},
		{"bad log format", "log_format: xml\n", nil, `config: log_format: want "json" or "console", got "xml"`},
		{"bad flag value", "", []string{"-shutdown-timeout", "0s"}, "config: shutdown.timeout: must be positive, got 0s"},
		{"unknown flag", "", []string{"-nope"}, "config: flags: flag provided but not defined: -nope"},
		{"missing file", "", []string{"-config", "/no/such/file.yaml"}, "config: -config: open /no/such/file.yaml: no such file or directory"},
		{"pool min above max", "templates: {t: {kind: process, protocol: p, process: {command: [sh]}, pool: {min: 3, max: 2}}}\nproviders: []\n", nil, "config: templates.t.pool.min: 3 is more than max (2)"},
		{"pool marks crossed", "templates: {t: {kind: process, protocol: p, process: {command: [sh]}, pool: {scale_up_at: 0.5, scale_down_at: 0.5}}}\nproviders: []\n", nil, "config: templates.t.pool.scale_down_at: 0.5 is not below scale_up_at (0.5)"},
		{"pool utilization above 1", "templates: {t: {kind: process, protocol: p, process: {command: [sh]}, pool: {scale_up_at: 2}}}\nproviders: []\n", nil, "config: templates.t.pool.scale_up_at: want a utilization from 0 to 1, got 2"},
		{"pool bad cooldown", "templates: {t: {kind: process, protocol: p, process: {command: [sh]}, pool: {cooldown: later}}}\nproviders: []\n", nil, `config: templates.t.pool.cooldown: want a duration such as 30s, got "later"`},
		{"pool negative window", "templates: {t: {kind: process, protocol: p, process: {command: [sh]}, pool: {utilization_window: -1s}}}\nproviders: []\n", nil, "config: templates.t.pool.utilization_window: must not be negative, got -1s"},
		{"pool per_instance 0", "templates: {t: {kind: process, protocol: p, process: {command: [sh]}, pool: {per_instance: 0}}}\nproviders: []\n", nil, "config: templates.t.pool.per_instance: want at least 1, got 0"},
		{"pool typo", "templates: {t: {kind: process, protocol: p, process: {command: [sh]}, pool: {maxx: 3}}}\nproviders: []\n", nil, `config: templates.t.pool.maxx: unknown field "maxx"`},
		{"bad restart policy", "templates: {t: {kind: process, protocol: p, process: {command: [sh]}, restart: {policy: sometimes}}}\nproviders: []\n", nil, `config: templates.t.restart.policy: want never, on-failure or always, got "sometimes"`},
		{"restart backoffs crossed", "templates: {t: {kind: process, protocol: p, process: {command: [sh]}, restart: {backoff: 5s, max_backoff: 1s}}}\nproviders: []\n", nil, "config: templates.t.restart.max_backoff: 1s is less than backoff (5s)"},
		{"crash loop ceiling below max_backoff", "templates: {t: {kind: process, protocol: p, process: {command: [sh]}, restart: {crash_loop_max_backoff: 5s}}}\nproviders: []\n", nil, "config: templates.t.restart.crash_loop_max_backoff: 5s is less than max_backoff (10s)"},
		{"unhealthy_after below the health interval", "health_interval: 5s\ntemplates: {t: {kind: process, protocol: p, process: {command: [sh]}, restart: {unhealthy_after: 2s}}}\nproviders: []\n", nil, "config: templates.t.restart.unhealthy_after: 2s is shorter than health_interval (5s): the health checks judge it"},
		{"unhealthy_after zero", "templates: {t: {kind: process, protocol: p, process: {command: [sh]}, restart: {unhealthy_after: 0s}}}\nproviders: []\n", nil, "config: templates.t.restart.unhealthy_after: must be positive, got 0s"},
		{"batch size 0", "store: {batch_size: 0}\n", nil, "config: store.batch_size: want 1 to 4096 records in one commit, got 0"},
		{"audit max_bytes negative", "audit: {max_bytes: -1}\n", nil, "config: audit.max_bytes: want a size in bytes, or 0 never to rotate, got -1"},
		{"audit max_files 0", "audit: {max_files: 0}\n", nil, "config: audit.max_files: want 1 to 1000 rotated files kept, got 0"},
		{"batch delay too long", "store: {batch_delay: 5s}\n", nil, "config: store.batch_delay: want at most 1s: every task waits for it, got 5s"},
		{"retention not a duration", "store: {retention: 7d}\n", nil, `config: store.retention: want a duration such as 30s, got "7d"`},
		{"retention too short", "store: {retention: 30s}\n", nil, "config: store.retention: want 0s (keep every task) or at least 1m0s, got 30s"},
		{"retention shorter than a task", "task_timeout: 10m\nstore: {retention: 5m}\n", nil, "config: store.retention: 5m0s does not outlast a task: want at least task_timeout (10m0s) + 1m0s"},
		{"retention with a task timeout that overflows", "task_timeout: 2562047h47m\nstore: {retention: 168h}\n", nil, "config: store.retention: 168h0m0s does not outlast a task"},
		{"store pool too small", "store: {dsn: \"postgres://u@db/app\", max_conns: 1}\n", nil, "config: store.max_conns: want 2 to 1000 connections (half commit task records, the rest read), got 1"},
		{"store pool on SQLite", "store: {max_conns: 4}\n", nil, "config: store.max_conns: is for a PostgreSQL store: SQLite keeps one connection, for its one writer"},
		{"retention negative", "store: {retention: -1h}\n", nil, "config: store.retention: must not be negative, got -1h0m0s"},
		{"heartbeat too short", "store: {heartbeat: 10ms}\n", nil, "config: store.heartbeat: want 100ms to 1m0s, got 10ms"},
		{"heartbeat too long", "store: {heartbeat: 2m}\n", nil, "config: store.heartbeat: want 100ms to 1m0s, got 2m0s"},
		{"restart window too short", "templates: {t: {kind: process, protocol: p, process: {command: [sh]}, restart: {window: 1ns}}}\nproviders: []\n", nil, "config: templates.t.restart.window: 1ns is not longer than the backoffs of 5 restarts (6.2s,"},
		{"restart window below the backoffs", "templates: {t: {kind: process, protocol: p, process: {command: [sh]}, restart: {backoff: 5s, max_backoff: 10s, window: 15s}}}\nproviders: []\n", nil, "config: templates.t.restart.window: 15s is not longer than the backoffs of 5 restarts (45s,"},
		{"queue outlasts the task", "templates: {t: {kind: process, protocol: p, process: {command: [sh]}, pool: {queue_timeout: 100h}}}\nproviders: []\n", nil, "config: templates.t.pool.queue_timeout: 100h0m0s is not shorter than task_timeout (1m0s)"},
		{"restart for ollama", "templates: {o: {kind: ollama, restart: {policy: always}}}\nproviders: []\n", nil, "config: templates.o.restart: set for an ollama template"},
		{"a provider of a pool", "templates: {t: {kind: process, protocol: p, process: {command: [sh]}, pool: {}}}\nproviders: [{id: x, template: t}]\n", nil, `config: providers[0].template: template "t" is a pool: it runs its own instances (t-1)`},
		{"an id of a pool's", "templates: {t: {kind: process, protocol: p, process: {command: [sh]}, pool: {}}, u: {kind: process, protocol: p, process: {command: [sh]}}}\nproviders: [{id: t-2, template: u}]\n", nil, `config: providers[0].id: "t-2" is named like an instance of the pool "t"`},
		{"mcp with a ready method", "templates: {m: {kind: mcp, process: {command: [sh], ready_method: hello}}}\nproviders: []\n", nil, "config: templates.m.process.ready_method: set for an mcp template"},
		{"mcp without a command", "templates: {m: {kind: mcp}}\nproviders: []\n", nil, "config: templates.m.process.command: required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if tt.file != "" {
				args = append([]string{"-config", write(t, "c.yaml", tt.file)}, args...)
			}
			_, err := Load(args, noEnv, &bytes.Buffer{})
			require.Error(t, err)
			assert.True(t, IsError(err))
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// Found in review: a child may not inherit the service's own settings.
// (That a DSN's password stays out of Main's message is package app's
// test.)
func TestChildrenInheritNoServiceSetting(t *testing.T) {
	cfg := write(t, "c.yaml", "templates:\n  p: {kind: process, protocol: p/v1, process: {command: [sh], inherit_env: [GLEITZEIT_ADMIN_TOKEN]}}\nproviders: []\n")
	_, err := Load([]string{"-config", cfg}, noEnv, io.Discard)
	require.ErrorContains(t, err, "config: templates.p.process.inherit_env[0]: GLEITZEIT_ADMIN_TOKEN is the service's own setting")
}

// pool: and restart: fill in what they leave out with the documented
// defaults; kind: mcp speaks mcp/v1 unless told otherwise.
func TestPoolAndRestartDefaults(t *testing.T) {
	s, err := Load([]string{"-config", write(t, "c.yaml", `
templates:
  m: {kind: mcp, process: {command: [sh]}, pool: {max: 8, queue: 0}}
  i: {kind: mcp, process: {command: [sh]}, pool: {utilization_window: 0s}}
  w: {kind: mcp, process: {command: [sh]}, pool: {utilization_window: 1m}}
  p: {kind: process, protocol: p/v1, process: {command: [sh]}, restart: {policy: always, max_restarts: 0}}
  q: {kind: process, protocol: q/v1, process: {command: [sh]}, restart: {max_backoff: 10m}}
  o: {kind: ollama}
providers: []
`)}, noEnv, &bytes.Buffer{})
	require.NoError(t, err)
	m := s.Templates["m"]
	assert.Equal(t, "mcp/v1", m.Protocol)
	want := defaultSizing
	want.Max, want.Queue = 8, 0
	assert.Equal(t, &want, m.Sizing)
	assert.Equal(t, 5*time.Second, m.Sizing.Window, "utilization over a few seconds, not the instant")
	assert.Zero(t, s.Templates["i"].Sizing.Window, "0s judges the instant")
	assert.Equal(t, time.Minute, s.Templates["w"].Sizing.Window)
	assert.Equal(t, defaultRestart, m.Supervision)
	assert.Equal(t, pool.Restart{Policy: pool.Always, Backoff: 200 * time.Millisecond, MaxBackoff: 10 * time.Second, MaxRestarts: 0, Window: time.Minute,
		CrashLoopMaxBackoff: 5 * time.Minute, UnhealthyAfter: 30 * time.Second},
		s.Templates["p"].Supervision)
	assert.Equal(t, 10*time.Minute, s.Templates["q"].Supervision.CrashLoopMaxBackoff, "a max_backoff above the crash loop's default ceiling is the ceiling")
	assert.Nil(t, s.Templates["p"].Sizing)
	assert.Equal(t, pool.Never, s.Templates["o"].Supervision.Policy, "an ollama provider has no child to restart")
	assert.Zero(t, s.Templates["o"].Supervision.UnhealthyAfter, "nor a child to cut off")
}

// restart.unhealthy_after is judged by the health checks: it is at least
// health_interval, and the default rises to a longer interval.
func TestUnhealthyAfterIsAtLeastTheHealthInterval(t *testing.T) {
	s, err := Load([]string{"-config", write(t, "c.yaml", `
health_interval: 45s
templates:
  p: {kind: process, protocol: p/v1, process: {command: [sh]}}
  q: {kind: process, protocol: q/v1, process: {command: [sh]}, restart: {unhealthy_after: 2m}}
providers: []
`)}, noEnv, &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, 45*time.Second, s.Templates["p"].Supervision.UnhealthyAfter)
	assert.Equal(t, 2*time.Minute, s.Templates["q"].Supervision.UnhealthyAfter)
}

// store.retention of 0s keeps every task; -migrate asks for the upgrade.
func TestRetentionZeroAndMigrateFlag(t *testing.T) {
	s, err := Load([]string{"-config", write(t, "c.yaml", "store: {retention: 0s}\n"), "-migrate"}, noEnv, &bytes.Buffer{})
	require.NoError(t, err)
	assert.Zero(t, s.StoreRetention)
	assert.True(t, s.Migrate)
}

// -h is no error: Load returns flag.ErrHelp, on which Main exits 0, after
// naming the program as it was called, its flags, and every environment
// variable Load reads with its meaning.
func TestHelpListsFlagsAndEnvironment(t *testing.T) {
	for _, arg := range []string{"-h", "-help", "--help"} {
		var stderr bytes.Buffer
		_, err := Load([]string{arg}, noEnv, &stderr)
		require.ErrorIs(t, err, flag.ErrHelp, arg)
		out := stderr.String()
		assert.Contains(t, out, "Usage: "+filepath.Base(os.Args[0])+" [flags]")
		assert.NotContains(t, out, "help requested")
		for _, fl := range []string{"-config", "-addr", "-admin-addr", "-data-dir", "-log-format", "-shutdown-timeout", "-drain-delay", "-task-timeout", "-migrate"} {
			assert.Regexp(t, `(?m)^  `+fl+`( |$)`, out)
		}
		for _, e := range envFields {
			assert.Contains(t, out, "  "+e.name+"\n    \t"+e.help+"\n")
		}
	}
}

// -ollama-url and GLEITZEIT_OLLAMA_URL point the default template at an
// Ollama server, the flag over the variable; a bad URL is named by where it
// came from, its password hidden; a file whose templates name no ollama
// template has nothing for them to point.
func TestOllamaURLFromFlagOrEnvironment(t *testing.T) {
	var stderr bytes.Buffer
	s, err := Load([]string{"-ollama-url", "http://10.0.0.5:11434"}, noEnv, &stderr)
	require.NoError(t, err)
	assert.Equal(t, "http://10.0.0.5:11434", s.Templates["ollama"].Ollama.URL)

	env := func(name string) string {
		if name == "GLEITZEIT_OLLAMA_URL" {
			return "http://ollama.internal:11434"
		}
		return ""
	}
	s, err = Load(nil, env, &stderr)
	require.NoError(t, err)
	assert.Equal(t, "http://ollama.internal:11434", s.Templates["ollama"].Ollama.URL)
	s, err = Load([]string{"-ollama-url", "https://gpu:443"}, env, &stderr)
	require.NoError(t, err)
	assert.Equal(t, "https://gpu:443", s.Templates["ollama"].Ollama.URL)

	_, err = Load([]string{"-ollama-url", "ftp://user:hunter2@h"}, noEnv, &stderr)
	require.ErrorContains(t, err, "config: -ollama-url: ")
	assert.NotContains(t, err.Error(), "hunter2")
	_, err = Load(nil, func(name string) string {
		if name == "GLEITZEIT_OLLAMA_URL" {
			return "localhost:11434"
		}
		return ""
	}, &stderr)
	require.ErrorContains(t, err, "config: GLEITZEIT_OLLAMA_URL: ")

	cfg := write(t, "c.yaml", "templates:\n  tools:\n    kind: process\n    protocol: tools/v1\n    process: {command: [cat]}\nproviders: []\n")
	_, err = Load([]string{"-config", cfg, "-ollama-url", "http://h:1"}, noEnv, &stderr)
	require.ErrorContains(t, err, "config: -ollama-url: there is no template named ollama of kind ollama")
}

// A template that no instance is given and no pool sizes is idle, and Main
// warns of it at start: its tasks would answer 503 with no other sign.
func TestIdleTemplatesAreWarnedOf(t *testing.T) {
	var stderr bytes.Buffer
	s, err := Load(nil, noEnv, &stderr)
	require.NoError(t, err)
	assert.Empty(t, s.Idle(), "the defaults serve every template")

	cfg := write(t, "c.yaml", "templates:\n  ollama:\n    kind: ollama\n    ollama: {url: 'http://127.0.0.1:1'}\n  tools:\n    kind: process\n    protocol: tools/v1\n    process: {command: [cat]}\n    pool: {min: 1, max: 2}\nproviders: []\n")
	s, err = Load([]string{"-config", cfg}, noEnv, &stderr)
	require.NoError(t, err)
	assert.Equal(t, []string{"ollama"}, s.Idle())
}

// log_level, GLEITZEIT_LOG_LEVEL and -log-level choose the service's log
// level; info by default.
func TestLogLevel(t *testing.T) {
	s, err := Load(nil, noEnv, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, zapcore.InfoLevel, s.LogLevel)
	s, err = Load([]string{"-log-level", "debug"}, func(name string) string {
		if name == "GLEITZEIT_LOG_LEVEL" {
			return "error"
		}
		return ""
	}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, zapcore.DebugLevel, s.LogLevel, "the flag over the variable")
	_, err = Load([]string{"-config", write(t, "c.yaml", "log_level: verbose\n")}, noEnv, io.Discard)
	require.ErrorContains(t, err, `config: log_level: want "debug", "info", "warn" or "error", got "verbose"`)
}

// admin_addr comes from the file, the environment or -admin-addr, and must
// be an address other than addr's.
func TestAdminAddrConfiguration(t *testing.T) {
	s, err := Load(nil, noEnv, io.Discard)
	require.NoError(t, err)
	assert.Empty(t, s.AdminAddr, "by default the admin API is served on addr")

	env := map[string]string{"GLEITZEIT_ADMIN_ADDR": "0.0.0.0:9090"}
	s, err = Load(nil, func(k string) string { return env[k] }, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "0.0.0.0:9090", s.AdminAddr)
	s, err = Load([]string{"-admin-addr", "127.0.0.1:9191"}, func(k string) string { return env[k] }, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:9191", s.AdminAddr, "a flag beats the environment")

	for file, want := range map[string]string{
		"admin_addr: localhost\n":                        `config: admin_addr: want host:port, or empty to serve the admin API on addr, got "localhost"`,
		"addr: 0.0.0.0:8080\nadmin_addr: 0.0.0.0:8080\n": "config: admin_addr: 0.0.0.0:8080 is addr too",
		"admin_addr: \"127.0.0.1:\"\n":                   `config: admin_addr: want host:port`,
	} {
		_, err := Load([]string{"-config", write(t, "c.yaml", file)}, noEnv, io.Discard)
		require.Error(t, err, file)
		assert.True(t, IsError(err))
		assert.Contains(t, err.Error(), want, file)
		assert.False(t, strings.Contains(err.Error(), "\n"))
	}
}

// The names the service serves, and some it must refuse, as a template's
// protocol and the task check take them. (How an answer quotes a name is
// package app's test.)
func TestNamesAreShortIdentifiers(t *testing.T) {
	for _, ok := range []string{"llm/v1", "mcp/v1", "python/v1", "echo/v1", "generate", "tools/call",
		"notifications/initialized", "notifications/resources/list_changed", "Arith.Multiply", "a:b_c-d",
		strings.Repeat("m", MaxNameLen)} {
		assert.True(t, ValidName(ok), ok)
	}
	for _, bad := range []string{"", "/v1", "-x", "echo v1", "echo\x00", "ech\xffo", "é/v1", "a\nb", "a\tb", "x;y", `a"b`,
		strings.Repeat("m", MaxNameLen+1)} {
		assert.False(t, ValidName(bad), "%q", bad)
	}

	_, err := Load([]string{"-config", write(t, "c.yaml", "data_dir: "+t.TempDir()+`
templates:
  p: {kind: process, protocol: "python v1", process: {command: [sh]}}
providers: []
`)}, noEnv, io.Discard)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `config: templates.p.protocol: want 1 to 64 ASCII letters`)
}

// ExpandHeader reads ${NAME} from the environment, and nothing else: a
// token's lone $ stays.
func TestExpandHeader(t *testing.T) {
	env := map[string]string{"TOKEN": "s3cret", "EMPTY": "", "SPACES": "   ", "LINES": "s3cret\nX-Evil: 1"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	for give, want := range map[string]string{
		"Bearer ${TOKEN}":   "Bearer s3cret",
		"${TOKEN}-${TOKEN}": "s3cret-s3cret",
		"a$b $TOKEN":        "a$b $TOKEN",
		"${1TOKEN}":         "${1TOKEN}",
	} {
		got, err := ExpandHeader(give, lookup)
		require.NoError(t, err, give)
		assert.Equal(t, want, got, give)
	}
	_, err := ExpandHeader("Bearer ${NOPE}", lookup)
	require.EqualError(t, err, "names the environment variable NOPE, which is not set")
	_, err = ExpandHeader("Bearer ${EMPTY}", lookup)
	require.EqualError(t, err, "names the environment variable EMPTY, which is blank")
	_, err = ExpandHeader("Bearer ${SPACES}", lookup)
	require.EqualError(t, err, "names the environment variable SPACES, which is blank")
	_, err = ExpandHeader("Bearer ${LINES}", lookup)
	require.EqualError(t, err, "holds a control character, which no header may")
	_, err = ExpandHeader("a\x00b", lookup)
	require.EqualError(t, err, "holds a control character, which no header may")
}
