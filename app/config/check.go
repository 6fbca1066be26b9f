package config

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/gleitzeit/gleitzeit/lifecycle"
	"github.com/gleitzeit/gleitzeit/providers/ollama"
	"github.com/gleitzeit/gleitzeit/providers/process"
	"github.com/gleitzeit/gleitzeit/providers/sqldb"
)

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

// checkProviders builds, without starting, what the configuration describes:
// the store and one provider of each template. The constructors check URLs,
// DSNs and commands and acquire nothing, so a bad one is a configuration
// error (exit 2) that names its field, before fx builds anything.
func (s *Settings) checkProviders(names []string) error {
	store, err := sqldb.New(s.StoreConfig())
	if err != nil {
		return bad("store.dsn", "%s", lifecycle.Redact(trimOwner(err.Error())))
	}
	if s.StoreMaxConns != 0 && store.Driver() == sqldb.SQLite {
		return bad("store.max_conns", "is for a PostgreSQL store: SQLite keeps one connection, for its one writer")
	}
	for _, name := range names {
		t := s.Templates[name]
		field := "templates." + name
		switch t.Kind {
		case "ollama":
			if _, err := ollama.New(ollama.Config{ID: name, URL: t.Ollama.URL, Protocol: t.Protocol}); err != nil {
				return bad(field+".ollama.url", "%s", lifecycle.Redact(trimOwner(err.Error())))
			}
		case "process", "mcp":
			grace, _ := time.ParseDuration(t.Process.Grace) // checked by checkTemplate
			_, err := process.New(process.Config{ID: name, Command: t.Process.Command, Dir: t.Process.Dir,
				Env: t.Process.Env, InheritEnv: t.Process.InheritEnv, Grace: grace})
			if err != nil {
				sub := ".process.command"
				if strings.Contains(err.Error(), "Config.Dir") {
					sub = ".process.dir"
				}
				return bad(field+sub, "%s", lifecycle.Redact(trimOwner(err.Error())))
			}
		}
	}
	return nil
}

// trimOwner drops the provider's own prefix ("process: ", `ollama "o": `)
// from a constructor's error: the field path says where it is.
func trimOwner(msg string) string {
	for _, owner := range []string{"process: ", "ollama ", "sqldb "} {
		if rest, ok := strings.CutPrefix(msg, owner); ok {
			if i := strings.Index(rest, ": "); i >= 0 && owner != "process: " {
				return rest[i+2:]
			}
			return rest
		}
	}
	return msg
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
