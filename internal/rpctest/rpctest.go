package rpctest

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

const (
	modeEnv     = "GLEITZEIT_RPC_HELPER"
	stubbornEnv = "GLEITZEIT_RPC_STUBBORN"
)

// The child's modes.
const (
	Server  = "server"  // serves the methods below until stdin ends
	Sleeper = "sleeper" // only sleeps: a grandchild
	Garbage = "garbage" // writes what is not JSON, then sleeps
)

// Command returns the command line and the environment that run this test
// binary as a child in mode. A stubborn child ignores SIGTERM and the end
// of its stdin: only SIGKILL stops it.
func Command(mode string, stubborn bool) (argv, env []string) {
	env = []string{modeEnv + "=" + mode}
	if stubborn {
		env = append(env, stubbornEnv+"=1")
	}
	return []string{os.Args[0], "-test.run=^$"}, env
}

// Serve runs the child, and exits, if this process was started as one;
// otherwise it returns at once. Call it first in TestMain.
//
// A Server answers "echo" (its params), "ping" ("pong"), "pid", "sleep"
// ([milliseconds]), "spawn" (starts a Sleeper grandchild in its process
// group and returns its pid), "exit" ([code]), "fail" (error 42) and "log" (writes each string of its params, an
// array, as a line on stderr).
func Serve() {
	mode := os.Getenv(modeEnv)
	if mode == "" {
		return
	}
	stubborn := os.Getenv(stubbornEnv) != ""
	if stubborn {
		signal.Ignore(syscall.SIGTERM)
	}
	switch mode {
	case Server:
		// Async: a call handled while another sleeps, as a real server
		// would. Handled one at a time, an "exit" sent behind a long
		// "sleep" waited for it, and a test that expected the exit to cut
		// the sleep short waited the whole sleep instead.
		conn := jsonrpc2.NewConn(context.Background(), jsonrpc2.NewPlainObjectStream(stdio{}), jsonrpc2.AsyncHandler(jsonrpc2.HandlerWithError(handle)))
		<-conn.DisconnectNotify()
		if !stubborn {
			os.Exit(0)
		}
	case Garbage:
		_, _ = os.Stdout.WriteString("this is not JSON\n")
	case Sleeper:
	default:
		os.Exit(3)
	}
	for { // not select {}: with no other goroutine, the runtime calls that a deadlock
		time.Sleep(time.Hour)
	}
}

func handle(_ context.Context, _ *jsonrpc2.Conn, req *jsonrpc2.Request) (any, error) {
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
		time.Sleep(time.Duration(firstInt(params)) * time.Millisecond)
		return "slept", nil
	case "spawn":
		argv, env := Command(Sleeper, os.Getenv(stubbornEnv) != "")
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), env...)
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		return cmd.Process.Pid, nil
	case "exit":
		os.Exit(firstInt(params))
	case "fail":
		return nil, &jsonrpc2.Error{Code: 42, Message: "asked to fail"}
	case "log":
		var lines []string
		_ = json.Unmarshal(params, &lines)
		for _, l := range lines {
			_, _ = os.Stderr.WriteString(l + "\n")
		}
		return len(lines), nil
	}
	return nil, &jsonrpc2.Error{Code: jsonrpc2.CodeMethodNotFound, Message: "no method " + strconv.Quote(req.Method)}
}

// firstInt reads params of the form [n]: JSON-RPC params are structured.
func firstInt(params json.RawMessage) int {
	var args []int
	_ = json.Unmarshal(params, &args)
	if len(args) == 0 {
		return 0
	}
	return args[0]
}

type stdio struct{}

func (stdio) Read(b []byte) (int, error)  { return os.Stdin.Read(b) }
func (stdio) Write(b []byte) (int, error) { return os.Stdout.Write(b) }
func (stdio) Close() error                { return os.Stdin.Close() }
