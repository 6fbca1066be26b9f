package rpctest

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
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
	Drainer = "drainer" // a Server that answers the calls it has before exiting at stdin's end
	Serial  = "serial"  // a Server that handles one request at a time, as many stdio servers do
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
	env = append(env, NoRaceExitSleep()) // last: callers count on the order above
	return []string{os.Args[0], "-test.run=^$"}, env
}

// NoRaceExitSleep is the GORACE setting, the test's own and then
// atexit_sleep_ms=0, for a child that is this test binary: built with
// -race, a binary sleeps a second at its exit, to let its goroutines
// report races, and a test that waits for its child to exit would wait
// that second every time.
func NoRaceExitSleep() string {
	return "GORACE=" + strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0")
}

// Serve runs the child, and exits, if this process was started as one;
// otherwise it returns at once. Call it first in TestMain.
//
// A Server answers "echo" (its params), "ping" ("pong"), "pid", "sleep"
// ([milliseconds], or [milliseconds, 1] to send the notification
// "sleeping" first), "spawn" (starts a Sleeper grandchild in its process
// group and returns its pid), "exit" ([code]), "fail" (error 42), "log"
// (writes each string of its params, an array, as a line on stderr),
// "ask" ([method]: calls method on the parent with {"x": 1} and returns
// {"result": ...} or {"error": {"code": ..., "message": ...}}), "tell"
// ([method]: sends method to the parent as a notification), "heard" (the
// methods of the notifications it got, in order) and "strays" (how many
// responses it got to requests it never sent: a parent that answers
// notifications), "id" (the id of the request), "infinity" (answers
// the number Infinity, which is not JSON) and "latin1" (answers a string
// in Latin-1, which is not UTF-8).
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
	case Server, Drainer, Serial:
		s := &server{serial: mode == Serial}
		var stream jsonrpc2.ObjectStream = jsonrpc2.NewPlainObjectStream(stdio{})
		if mode == Drainer {
			stream = drainingStream{ObjectStream: stream, s: s}
		}
		conn := jsonrpc2.NewConn(context.Background(), stream, s, jsonrpc2.OnRecv(s.recv))
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

// server handles the parent's messages: notifications at once, in order,
// on the reading goroutine; requests each on a goroutine of its own, a call
// handled while another sleeps, as a real server would. Handled one at a
// time, an "exit" sent behind a long "sleep" waited for it, and a test
// that expected the exit to cut the sleep short waited the whole sleep.
type server struct {
	calls  sync.WaitGroup // the requests being handled
	serial bool           // handle each request on the reading goroutine, in turn

	mu     sync.Mutex // guards the fields below
	heard  []string   // the notifications' methods
	strays int        // responses to no request of ours
}

func (s *server) Handle(ctx context.Context, conn *jsonrpc2.Conn, req *jsonrpc2.Request) {
	if req.Notif {
		s.mu.Lock()
		s.heard = append(s.heard, req.Method)
		s.mu.Unlock()
		return
	}
	if req.Method == "infinity" || req.Method == "latin1" {
		rawAnswer(req.ID, req.Method)
		return
	}
	if s.serial {
		jsonrpc2.HandlerWithError(s.handle).Handle(ctx, conn, req)
		return
	}
	s.calls.Add(1)
	go func() {
		defer s.calls.Done()
		jsonrpc2.HandlerWithError(s.handle).Handle(ctx, conn, req)
	}()
}

// recv counts the responses that match no request of ours.
func (s *server) recv(req *jsonrpc2.Request, resp *jsonrpc2.Response) {
	if resp != nil && req == nil {
		s.mu.Lock()
		s.strays++
		s.mu.Unlock()
	}
}

// drainingStream, at the end of stdin, waits for the requests being
// handled to be answered before it reports the end, which closes the
// connection.
type drainingStream struct {
	jsonrpc2.ObjectStream
	s *server
}

func (d drainingStream) ReadObject(v any) error {
	err := d.ObjectStream.ReadObject(v)
	if err != nil {
		d.s.calls.Wait()
	}
	return err
}

func (s *server) handle(ctx context.Context, conn *jsonrpc2.Conn, req *jsonrpc2.Request) (any, error) {
	var params json.RawMessage
	if req.Params != nil {
		params = *req.Params
	}
	switch req.Method {
	case "echo":
		return params, nil
	case "ping":
		return "pong", nil
	case "id":
		return req.ID, nil
	case "pid":
		return os.Getpid(), nil
	case "sleep":
		var args []int
		_ = json.Unmarshal(params, &args)
		if len(args) > 1 && args[1] == 1 {
			_ = conn.Notify(ctx, "sleeping", nil)
		}
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
	case "ask":
		var method []string
		_ = json.Unmarshal(params, &method)
		var result json.RawMessage
		err := conn.Call(ctx, method[0], map[string]int{"x": 1}, &result)
		var rpcErr *jsonrpc2.Error
		switch {
		case errors.As(err, &rpcErr):
			return map[string]any{"error": map[string]any{"code": rpcErr.Code, "message": rpcErr.Message}}, nil
		case err != nil:
			return nil, err
		}
		return map[string]any{"result": result}, nil
	case "tell":
		var method []string
		_ = json.Unmarshal(params, &method)
		return "told", conn.Notify(ctx, method[0], map[string]int{"x": 1})
	case "heard":
		s.mu.Lock()
		defer s.mu.Unlock()
		return append([]string{}, s.heard...), nil
	case "strays":
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.strays, nil
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

// rawAnswer answers the request with what no JSON encoder writes:
// "infinity", the number Infinity, which is not JSON, as Python's json
// module writes 1e999; "latin1", a string whose é is Latin-1's one byte,
// which is not UTF-8, as a child that writes its bytes as they come does.
// One write of one line, as the connection's own answers are, so that it
// does not mix with them.
func rawAnswer(id jsonrpc2.ID, method string) {
	b, _ := json.Marshal(id)
	result := "Infinity"
	if method == "latin1" {
		result = "\"caf\xe9\""
	}
	_, _ = os.Stdout.WriteString(`{"jsonrpc":"2.0","id":` + string(b) + `,"result":` + result + `}` + "\n")
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
