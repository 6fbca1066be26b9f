package config

import (
	"strings"
	"time"

	"github.com/gleitzeit/gleitzeit/lifecycle"
	"github.com/gleitzeit/gleitzeit/providers/ollama"
	"github.com/gleitzeit/gleitzeit/providers/process"
	"github.com/gleitzeit/gleitzeit/providers/sqldb"
)

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
		case "mcp", "process":
			if t.Process == nil { // a remote mcp server: checked by checkRemote
				continue
			}
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
