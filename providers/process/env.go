package process

import (
	"fmt"
	"slices"
	"strings"
)

// BaseEnv names the variables of the service's environment that every
// child gets: what a program needs to find its tools, its home, its
// language, its time zone and its scratch space. Nothing else of the
// service's environment reaches a child unless its Config names it in
// InheritEnv: the service's own secrets (an admin token, a database DSN
// with its password) live in its environment, and a child that can run
// arbitrary tools must not be able to read them.
var BaseEnv = []string{"PATH", "HOME", "LANG", "TZ", "TMPDIR"}

// checkEnv refuses Env entries that are not KEY=VALUE and InheritEnv names
// that are empty or hold "=".
func checkEnv(cfg Config) error {
	for i, kv := range cfg.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fmt.Errorf("process: Config.Env[%d]: want KEY=VALUE, got %q", i, kv)
		}
	}
	for i, name := range cfg.InheritEnv {
		if name == "" || strings.Contains(name, "=") {
			return fmt.Errorf("process: Config.InheritEnv[%d]: want a variable's name, got %q", i, name)
		}
	}
	return nil
}

// childEnv is the child's environment: the variables of BaseEnv and
// InheritEnv that the service has, then Env, whose entries win.
func childEnv(cfg Config, lookup func(string) (string, bool)) []string {
	var env []string
	for _, name := range slices.Concat(BaseEnv, cfg.InheritEnv) {
		if v, ok := lookup(name); ok {
			env = append(env, name+"="+v)
		}
	}
	return append(env, cfg.Env...) // exec keeps the last value of a duplicated key
}
