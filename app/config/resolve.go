package config

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/gleitzeit/gleitzeit/app/pool"
	"github.com/gleitzeit/gleitzeit/lifecycle"
	"github.com/gleitzeit/gleitzeit/providers/mcp"
)

// resolve checks every field and fills in what defaults from other fields,
// a section at a time, each reading only what the ones before it resolved.
// The first error found is the one returned, so the order is the order in
// which a configuration's mistakes are reported.
func (f *File) resolve() (*Settings, error) {
	s := &Settings{Templates: f.Templates, Providers: f.Providers}
	for _, section := range []func(*Settings) error{f.resolveServer, f.resolveStore, f.resolveAudit, f.resolveTimeouts} {
		if err := section(s); err != nil {
			return nil, err
		}
	}
	names, longest, err := s.resolveTemplates()
	if err != nil {
		return nil, err
	}
	if err := f.resolveReserve(s, longest); err != nil {
		return nil, err
	}
	if err := s.checkProviders(names); err != nil {
		return nil, err
	}
	if err := s.checkInstances(names); err != nil {
		return nil, err
	}
	return s, nil
}

// resolveServer checks the listeners, the data directory and the log.
func (f *File) resolveServer(s *Settings) error {
	s.Addr, s.AdminAddr, s.DataDir, s.AdminToken, s.TaskToken, s.LogFormat = f.Addr, f.AdminAddr, f.DataDir, f.AdminToken, f.TaskToken, f.LogFormat
	if _, port, err := net.SplitHostPort(s.Addr); err != nil || port == "" {
		return bad("addr", "want host:port, got %q", s.Addr)
	}
	if err := checkAdminAddr(s.Addr, s.AdminAddr); err != nil {
		return err
	}
	if s.DataDir == "" {
		return bad("data_dir", "empty")
	}
	if s.LogFormat != "json" && s.LogFormat != "console" {
		return bad("log_format", `want "json" or "console", got %q`, s.LogFormat)
	}
	switch f.LogLevel {
	case "debug", "info", "warn", "error":
		_ = s.LogLevel.Set(f.LogLevel)
	default:
		return bad("log_level", `want "debug", "info", "warn" or "error", got %s`, quote(f.LogLevel))
	}
	return nil
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

// The group commit's defaults, measured (BENCHMARKS.md, "Task
// throughput"): records that arrive during a commit make the next batch,
// so no delay is needed for batches to form under load, and a task alone
// waits for nothing but its own commit.
const (
	defaultBatchSize  = 64
	defaultBatchDelay = 0
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

// resolveStore checks store: and fills in its defaults: a SQLite file in
// data_dir unless a DSN is given.
func (f *File) resolveStore(s *Settings) error {
	s.StoreDSN = f.Store.DSN
	if s.StoreDSN == "" {
		s.StoreDSN = filepath.Join(s.DataDir, "gleitzeit.db")
	}
	s.StoreBatchSize, s.StoreBatchDelay = defaultBatchSize, defaultBatchDelay
	if f.Store.BatchSize != nil {
		if *f.Store.BatchSize < 1 || *f.Store.BatchSize > 4096 {
			return bad("store.batch_size", "want 1 to 4096 records in one commit, got %d", *f.Store.BatchSize)
		}
		s.StoreBatchSize = *f.Store.BatchSize
	}
	if f.Store.BatchDelay != "" {
		d, err := duration("store.batch_delay", f.Store.BatchDelay, true)
		if err != nil {
			return err
		}
		if d > time.Second {
			return bad("store.batch_delay", "want at most 1s: every task waits for it, got %v", d)
		}
		s.StoreBatchDelay = d
	}
	if f.Store.MaxConns != nil {
		if *f.Store.MaxConns < 2 || *f.Store.MaxConns > 1000 {
			return bad("store.max_conns", "want 2 to 1000 connections (half commit task records, the rest read), got %d", *f.Store.MaxConns)
		}
		s.StoreMaxConns = *f.Store.MaxConns
	}
	s.StoreRetention = defaultRetention
	if f.Store.Retention != "" {
		d, err := duration("store.retention", f.Store.Retention, true)
		if err != nil {
			return err
		}
		if d > 0 && d < minRetention {
			return bad("store.retention", "want 0s (keep every task) or at least %v, got %v", minRetention, d)
		}
		s.StoreRetention = d
	}
	s.StoreHeartbeat = defaultHeartbeat
	if f.Store.Heartbeat != "" {
		d, err := duration("store.heartbeat", f.Store.Heartbeat, false)
		if err != nil {
			return err
		}
		if d < minHeartbeat || d > maxHeartbeat {
			return bad("store.heartbeat", "want %v to %v, got %v", minHeartbeat, maxHeartbeat, d)
		}
		s.StoreHeartbeat = d
	}
	return nil
}

// The audit log's rotation: a log that grows without bound fills the
// volume of a pod that runs for months. 64 MiB a file and 5 rotated files
// bound it to 384 MiB, which a volume sized for the task store holds, and
// keep days of tasks at a few a second (a record is about 200 bytes).
const (
	defaultAuditMaxBytes = 64 << 20
	defaultAuditMaxFiles = 5
)

// resolveAudit checks audit: and fills in its defaults: audit.jsonl in
// data_dir unless a path is given.
func (f *File) resolveAudit(s *Settings) error {
	s.AuditPath = f.Audit.Path
	if s.AuditPath == "" {
		s.AuditPath = filepath.Join(s.DataDir, "audit.jsonl")
	}
	s.AuditMaxBytes, s.AuditMaxFiles = defaultAuditMaxBytes, defaultAuditMaxFiles
	if f.Audit.MaxBytes != nil {
		if *f.Audit.MaxBytes < 0 {
			return bad("audit.max_bytes", "want a size in bytes, or 0 never to rotate, got %d", *f.Audit.MaxBytes)
		}
		s.AuditMaxBytes = *f.Audit.MaxBytes
	}
	if f.Audit.MaxFiles != nil {
		if *f.Audit.MaxFiles < 1 || *f.Audit.MaxFiles > 1000 {
			return bad("audit.max_files", "want 1 to 1000 rotated files kept, got %d", *f.Audit.MaxFiles)
		}
		s.AuditMaxFiles = *f.Audit.MaxFiles
	}
	return nil
}

// resolveTimeouts checks the durations that bound a task, the health
// checks, a provider's Initialize and cleanup and the shutdown, and holds
// what depends on them: the store's retention outlasts a task, and the
// drain delay leaves the shutdown time to stop the service.
func (f *File) resolveTimeouts(s *Settings) error {
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
			return err
		}
		*d.out = v
	}
	if s.StoreRetention > 0 && s.StoreRetention-minRetention < s.TaskTimeout { // no overflow: retention >= minRetention
		// A task is recorded "running" as it begins and updated when it
		// ends: deleted in between, its outcome could not be recorded, and
		// a task that ran would be answered 503.
		return bad("store.retention", "%v does not outlast a task: want at least task_timeout (%v) + %v", s.StoreRetention, s.TaskTimeout, minRetention)
	}
	if s.DrainDelay >= s.ShutdownTimeout {
		return bad("shutdown.drain_delay", "%v leaves nothing of shutdown.timeout (%v) to stop the service", s.DrainDelay, s.ShutdownTimeout)
	}
	return nil
}

// resolveTemplates checks each template, in name order so that the first
// error is the same every time, and returns their names and the longest
// provider timeout, provider_timeout's or a template's own, which the
// default cleanup reserve is made of.
func (s *Settings) resolveTemplates() (names []string, longest time.Duration, err error) {
	names = make([]string, 0, len(s.Templates))
	for name := range s.Templates {
		names = append(names, name)
	}
	slices.Sort(names)
	longest = s.ProviderTimeout
	for _, name := range names {
		t, err := checkTemplate("templates."+name, s.Templates[name])
		if err != nil {
			return nil, 0, err
		}
		if err := checkUnhealthyAfter("templates."+name, &t, s.HealthInterval); err != nil {
			return nil, 0, err
		}
		s.Templates[name] = t
		if t.Sizing != nil && t.Sizing.QueueTimeout >= s.TaskTimeout {
			return nil, 0, bad("templates."+name+".pool.queue_timeout", "%v is not shorter than task_timeout (%v): the task's own deadline would end every longer wait", t.Sizing.QueueTimeout, s.TaskTimeout)
		}
		if t.Timeout != "" {
			d, _ := time.ParseDuration(t.Timeout) // checked above
			longest = max(longest, d)
		}
	}
	for _, name := range names {
		if err := s.checkSampling("templates."+name, s.Templates[name]); err != nil {
			return nil, 0, err
		}
	}
	return names, longest, nil
}

// checkTemplate checks a template and fills in what its kind implies: the
// protocol of ollama and mcp, pool:'s sizing and restart:'s policy.
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
		if t.MCP != nil {
			return t, bad(field+".mcp", "set for an ollama template")
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
		if t.Kind == "mcp" && t.MCP != nil && t.MCP.URL != "" {
			if err := checkRemote(field, t); err != nil {
				return t, err
			}
			break
		}
		switch {
		case t.MCP != nil && len(t.MCP.Headers) > 0:
			return t, bad(field+".mcp.headers", "set without mcp.url: headers are for a server reached over HTTP")
		case t.Kind == "process" && t.MCP != nil:
			return t, bad(field+".mcp", "set for a process template: it is an mcp template's")
		case t.Ollama != nil:
			return t, bad(field+".ollama", "set for a %s template", t.Kind)
		case t.Process == nil || len(t.Process.Command) == 0:
			if t.Kind == "mcp" {
				return t, bad(field+".process.command", "required, or mcp.url for a server already running")
			}
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
		if t.MCP != nil {
			for i, root := range t.MCP.Roots {
				if err := checkRoot(root); err != nil {
					return t, bad(fmt.Sprintf("%s.mcp.roots[%d]", field, i), "%v", err)
				}
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

// resolveReserve checks shutdown.cleanup_reserve, or fills it in from the
// longest provider timeout (see checkReserve).
func (f *File) resolveReserve(s *Settings, longest time.Duration) error {
	if f.Shutdown.CleanupReserve != "" {
		d, err := duration("shutdown.cleanup_reserve", f.Shutdown.CleanupReserve, false)
		if err != nil {
			return err
		}
		s.CleanupReserve = d
	}
	return s.checkReserve(f.Shutdown.CleanupReserve != "", longest)
}

// reserveMargin is what the default cleanup reserve adds to the longest
// provider timeout: up to a second to answer the tasks that the end of the
// HTTP shutdown cancelled (package app's answerGrace), and a second for the
// engine's stop and the report.
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

// checkInstances checks providers:, the instances to run at start: each
// with an id of its own, none of the service's own (StoreID, AuditID) or
// named like a pool's instance, and of a template without pool: (a pool
// runs its own). names are the templates', sorted, for the error that
// lists them.
func (s *Settings) checkInstances(names []string) error {
	seen := map[string]bool{}
	for i, p := range s.Providers {
		field := fmt.Sprintf("providers[%d]", i)
		switch {
		case !ValidID(p.ID):
			return bad(field+".id", "want lowercase letters, digits, '.', '_' or '-', got %q", p.ID)
		case seen[p.ID] || p.ID == StoreID || p.ID == AuditID:
			return bad(field+".id", "%q is used twice (store and audit are taken)", p.ID)
		case s.Templates[p.Template].Kind == "":
			return bad(field+".template", "no template %q (have: %s)", p.Template, strings.Join(names, ", "))
		case s.Templates[p.Template].Sizing != nil:
			return bad(field+".template", "template %q is a pool: it runs its own instances (%s); remove this entry", p.Template, pool.InstanceID(p.Template, 1))
		}
		if name, ok := s.PoolOf(p.ID); ok {
			return bad(field+".id", "%q is named like an instance of the pool %q: those names are the pool's", p.ID, name)
		}
		seen[p.ID] = true
	}
	return nil
}

// duration reads a field's duration, which must be positive, or zero too
// if zeroOK.
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

// checkRoot checks an MCP root: an absolute path to a directory.
func checkRoot(path string) error {
	if !filepath.IsAbs(path) {
		return fmt.Errorf("want an absolute path, got %q", path)
	}
	info, err := os.Stat(path)
	switch {
	case err != nil:
		return err
	case !info.IsDir():
		return fmt.Errorf("%s is not a directory", path)
	}
	return nil
}

// checkRemote checks an mcp template whose server is already running,
// reached at mcp.url.
func checkRemote(field string, t Template) error {
	switch {
	case t.Process != nil:
		return bad(field+".process", "set beside mcp.url: a template's server is a child or a URL, not both")
	case t.Ollama != nil:
		return bad(field+".ollama", "set for an mcp template")
	}
	// The URL is not quoted: its userinfo, path or query may hold a
	// secret.
	u, err := url.Parse(t.MCP.URL)
	switch {
	case err != nil:
		return bad(field+".mcp.url", "not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return bad(field+".mcp.url", "want http or https, got the scheme %q", u.Scheme)
	case u.Host == "":
		return bad(field+".mcp.url", "no host")
	}
	for _, name := range slices.Sorted(maps.Keys(t.MCP.Headers)) {
		if !validHeaderName(name) {
			return bad(field+".mcp.headers", "%q is not a header's name", name)
		}
		if mcp.TransportHeader(name) {
			return bad(field+".mcp.headers."+name, "the transport sets it itself")
		}
		if _, err := ExpandHeader(t.MCP.Headers[name], os.LookupEnv); err != nil {
			return bad(field+".mcp.headers."+name, "%v", err)
		}
	}
	for i, root := range t.MCP.Roots {
		if err := checkRoot(root); err != nil {
			return bad(fmt.Sprintf("%s.mcp.roots[%d]", field, i), "%v", err)
		}
	}
	return nil
}

// validHeaderName reports whether name is an HTTP header's name: a token
// of RFC 9110.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		if r > unicode.MaxASCII || !(unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("!#$%&'*+-.^_`|~", r)) {
			return false
		}
	}
	return true
}

// envRef is ${NAME} in a header's value.
var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// ExpandHeader replaces each ${NAME} in a header's value with the
// environment variable NAME, as lookup finds it, and fails naming the first
// that is not set, or is blank (a token that did not arrive), or a value
// that holds a control character (a line break from a file read into the
// variable, say), which no header may; it never shows a value. Nothing
// else of the value changes: a lone $ is a $.
func ExpandHeader(value string, lookup func(string) (string, bool)) (string, error) {
	var missing, empty string
	out := envRef.ReplaceAllStringFunc(value, func(ref string) string {
		name := ref[2 : len(ref)-1]
		v, ok := lookup(name)
		switch {
		case !ok && missing == "":
			missing = name
		case ok && strings.TrimSpace(v) == "" && empty == "":
			empty = name
		}
		return v
	})
	switch {
	case missing != "":
		return "", fmt.Errorf("names the environment variable %s, which is not set", missing)
	case empty != "":
		return "", fmt.Errorf("names the environment variable %s, which is blank", empty)
	case strings.ContainsFunc(out, func(r rune) bool { return (r < ' ' && r != '\t') || r == 0x7f }):
		return "", errors.New("holds a control character, which no header may")
	}
	return out, nil
}

// checkSampling checks an mcp template's mcp.sampling, once every template
// is known: its protocol (llm/v1 if empty) must be an ollama template's,
// whose chat answers the server.
func (s *Settings) checkSampling(field string, t Template) error {
	if t.MCP == nil || t.MCP.Sampling == nil {
		return nil
	}
	sm := t.MCP.Sampling
	if sm.Protocol == "" {
		sm.Protocol = "llm/v1"
	}
	if sm.Model == "" {
		return bad(field+".mcp.sampling.model", "required: the model that answers the server")
	}
	var served []string
	for name, other := range s.Templates {
		if other.Protocol == sm.Protocol {
			if other.Kind != "ollama" {
				return bad(field+".mcp.sampling.protocol", "%s is served by templates.%s, a %s template: sampling is an ollama chat", sm.Protocol, name, other.Kind)
			}
			served = append(served, name)
		}
	}
	if len(served) == 0 {
		return bad(field+".mcp.sampling.protocol", "no template serves %s", sm.Protocol)
	}
	return nil
}
