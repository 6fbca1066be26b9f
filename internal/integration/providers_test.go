package integration_test

import (
	"bytes"
	"context"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ollama/ollama/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
	"go.uber.org/goleak"

	"github.com/gleitzeit/gleitzeit/fxmodule"
	"github.com/gleitzeit/gleitzeit/internal/ollamatest"
	"github.com/gleitzeit/gleitzeit/internal/rpctest"
	"github.com/gleitzeit/gleitzeit/internal/testkit"
	"github.com/gleitzeit/gleitzeit/lifecycle"
	"github.com/gleitzeit/gleitzeit/providers/file"
	"github.com/gleitzeit/gleitzeit/providers/ollama"
	"github.com/gleitzeit/gleitzeit/providers/process"
	"github.com/gleitzeit/gleitzeit/providers/sqldb"
)

func TestMain(m *testing.M) {
	rpctest.Serve()
	goleak.VerifyTestMain(m)
}

// Every real provider, declared with fxmodule.Provide from its New and a
// supplied Config, is initialized at start, usable, and cleaned up at stop,
// leaving no descriptor, connection or process behind.
func TestEveryProviderUnderFx(t *testing.T) {
	llm := ollamatest.Start()
	defer llm.Close()
	dir := t.TempDir()
	argv, env := rpctest.Command(rpctest.Server, false)
	before := testkit.OpenFDs(t)

	var (
		reg   *lifecycle.Registry
		db    *sqldb.DB
		audit *file.Writer
		model *ollama.Provider
		child *process.Process
	)
	app := fxtest.New(t,
		fx.Supply(
			sqldb.Config{ID: "store", DSN: filepath.Join(dir, "store.db")},
			file.Config{ID: "audit", Path: filepath.Join(dir, "audit.jsonl")},
			ollama.Config{ID: "ollama", URL: llm.URL()},
			process.Config{ID: "echo", Command: argv, Env: env, Protocol: "echo/v1", Stderr: &bytes.Buffer{}},
		),
		fxmodule.Module,
		fxmodule.Provide(sqldb.New),
		fxmodule.Provide(file.New),
		fxmodule.Provide(ollama.New),
		fxmodule.Provide(process.New, lifecycle.Timeout(5*time.Second)),
		fx.Populate(&reg, &db, &audit, &model, &child),
	)
	app.RequireStart()

	pool, err := db.DB()
	require.NoError(t, err)
	_, err = pool.Exec(`CREATE TABLE t (x INTEGER)`)
	require.NoError(t, err)
	require.NoError(t, audit.Write(map[string]string{"event": "started"}))
	v, err := model.Version(context.Background())
	require.NoError(t, err)
	assert.Equal(t, ollamatest.Version, v)
	require.NoError(t, model.Generate(context.Background(), &api.GenerateRequest{Model: "llama3.2", Prompt: "hi"},
		func(api.GenerateResponse) error { return nil }))
	var echoed []string
	require.NoError(t, child.Call(context.Background(), "echo", []string{"hello"}, &echoed))
	assert.Equal(t, []string{"hello"}, echoed)
	pid := child.HealthCheck(context.Background()).Resources["pid"].(int)

	health := reg.Health(context.Background())
	assert.Equal(t, lifecycle.StatusHealthy, health.Status, "%+v", health.Providers)

	app.RequireStop()
	rep := reg.Report()
	for _, id := range []string{"store", "audit", "ollama", "echo"} {
		assert.Equal(t, lifecycle.ResultOK, rep.Providers[id].Result, "%s: %v", id, rep.Providers[id].Err)
	}
	// The loopback server lives in this process: its side of a connection
	// is a descriptor too, closed once it sees the client's side close.
	require.Eventually(t, func() bool { return llm.OpenConns() == 0 }, testkit.Wait, 5*time.Millisecond)
	assert.Equal(t, before, testkit.OpenFDs(t), "no descriptor left open")
	assert.ErrorIs(t, syscall.Kill(pid, 0), syscall.ESRCH, "no process left")
}
