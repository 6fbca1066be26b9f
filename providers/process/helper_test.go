package process_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/sourcegraph/jsonrpc2"
)

// The tests' child processes are this test binary, run again with
// helperEnv set to what it should be.
const (
	helperEnv   = "GLEITZEIT_PROCESS_HELPER"
	stubbornEnv = "GLEITZEIT_PROCESS_STUBBORN" // ignore SIGTERM and stdin's end
)

// helperMain is the child's main: "server" serves JSON-RPC on stdin and
// stdout; "sleeper" is a grandchild that only sleeps; "garbage" writes
// what is not JSON.
func helperMain(mode string) {
	if os.Getenv(stubbornEnv) != "" {
		signal.Ignore(syscall.SIGTERM)
	}
	switch mode {
	case "sleeper":
		sleepForever()
	case "garbage":
		os.Stdout.WriteString("this is not JSON\n")
		sleepForever()
	case "server":
		conn := jsonrpc2.NewConn(context.Background(),
			jsonrpc2.NewPlainObjectStream(stdio{}), jsonrpc2.HandlerWithError(serve))
		<-conn.DisconnectNotify()
		if os.Getenv(stubbornEnv) != "" {
			sleepForever() // stdin is closed, and still it does not exit
		}
		os.Exit(0)
	}
	os.Exit(3)
}

func serve(_ context.Context, _ *jsonrpc2.Conn, req *jsonrpc2.Request) (any, error) {
	var params json.RawMessage
	if req.Params != nil {
		params = *req.Params
	}
	switch req.Method {
	case "echo":
		return params, nil
	case "ping":
		return "pong", nil
	case "pid":
		return os.Getpid(), nil
	case "sleep":
		var ms int
		_ = json.Unmarshal(params, &ms)
		time.Sleep(time.Duration(ms) * time.Millisecond)
		return "slept", nil
	case "spawn": // a grandchild in the same process group
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), helperEnv+"=sleeper")
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		return cmd.Process.Pid, nil
	case "exit":
		var code int
		_ = json.Unmarshal(params, &code)
		os.Exit(code)
	case "fail":
		return nil, &jsonrpc2.Error{Code: 42, Message: "asked to fail"}
	}
	return nil, &jsonrpc2.Error{Code: jsonrpc2.CodeMethodNotFound, Message: "no method " + strconv.Quote(req.Method)}
}

type stdio struct{}

func (stdio) Read(b []byte) (int, error)  { return os.Stdin.Read(b) }
func (stdio) Write(b []byte) (int, error) { return os.Stdout.Write(b) }
func (stdio) Close() error                { return os.Stdin.Close() }

// sleepForever parks the helper. Not select {}: with no other goroutine
// left, the runtime would call that a deadlock and exit.
func sleepForever() {
	for {
		time.Sleep(time.Hour)
	}
}
