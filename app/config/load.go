package config

import (
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/gleitzeit/gleitzeit/lifecycle"
	"github.com/gleitzeit/gleitzeit/providers/ollama"
)

//go:embed defaults.yaml
var defaultsYAML []byte

// Load reads the configuration from args, the command line without the
// program's name, and getenv: the embedded defaults, then the file named
// by -config, then the environment (GLEITZEIT_ADDR, GLEITZEIT_DATA_DIR,
// GLEITZEIT_ADMIN_TOKEN, GLEITZEIT_TASK_TOKEN, ...), then the flags, each
// over the one before. It checks every field and builds, without starting,
// the providers it describes; the first mistake it finds is an *Error that
// names the field and the problem. -h prints the usage to stderr and
// returns flag.ErrHelp.
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
	timelinePath := fs.String("timeline", "", "write the SVG of the service's start and stop to this file as it exits")
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
	s.TimelinePath = *timelinePath
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

// unknownField finds where in data a field that File does not have is, as
// a path such as templates.o.critcal: the strict decoder names the field
// but not where it is.
func unknownField(data []byte) string {
	var v any
	if yaml.Unmarshal(data, &v) != nil {
		return ""
	}
	return walkUnknown(v, reflect.TypeFor[File](), "")
}

func walkUnknown(v any, t reflect.Type, path string) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	join := func(p, k string) string {
		if p == "" {
			return k
		}
		return p + "." + k
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		fields := map[string]reflect.Type{}
		for i := range t.NumField() {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
			if name != "" && name != "-" {
				fields[name] = t.Field(i).Type
			}
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			ft, ok := fields[k]
			if !ok {
				return join(path, k)
			}
			if p := walkUnknown(m[k], ft, join(path, k)); p != "" {
				return p
			}
		}
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		for k, e := range m {
			if p := walkUnknown(e, t.Elem(), join(path, k)); p != "" {
				return p
			}
		}
	case reflect.Slice:
		l, ok := v.([]any)
		if !ok {
			return ""
		}
		for i, e := range l {
			if p := walkUnknown(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); p != "" {
				return p
			}
		}
	}
	return ""
}
