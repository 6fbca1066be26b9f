package process

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sourcegraph/jsonrpc2"

	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// DefaultGrace is how long a child has between SIGTERM and SIGKILL: long
// enough for an interpreter to flush and exit, short enough to leave the
// rest of a 30-second pod shutdown to everything else.
const DefaultGrace = 5 * time.Second

var (
	// ErrClosed: the process is not running because it was never
	// initialized, was cleaned up, or exited. Calls in flight when that
	// happens fail with it.
	ErrClosed = errors.New("process is not running")
	// ErrKilled: the process did not exit within its grace period after
	// SIGTERM and was killed with SIGKILL.
	ErrKilled = errors.New("process killed after its grace period")
)

// Config describes one child process.
type Config struct {
	// ID names the provider; "process" if empty.
	ID string
	// Command is the program and its arguments. The program is looked up
	// in PATH when the provider is built.
	Command []string
	// Dir is the working directory; the service's if empty.
	Dir string
	// Env is the child's own environment, as KEY=VALUE entries. The child
	// gets these, the service's variables named in BaseEnv and those named
	// in InheritEnv, and nothing else: see BaseEnv.
	Env []string
	// InheritEnv names variables of the service's environment to pass to
	// the child besides BaseEnv.
	InheritEnv []string
	// Protocol names what the child serves, such as "python/v1" or
	// "mcp/v1", for whoever routes work to providers.
	Protocol string
	// Grace is the time between SIGTERM and SIGKILL; DefaultGrace if zero.
	Grace time.Duration
	// Stderr receives the child's standard error; the service's if nil. If
	// it has a Flush method, that is called once the child has exited and
	// its output is copied, for a last line that ends without a newline.
	Stderr io.Writer
	// OnOutputError, if set, is told once when reading the child's
	// standard output fails with something other than its end: output that
	// is not JSON-RPC (a banner printed on stdout, say), with the bytes
	// read just before. The child is unusable after that; this is for
	// logging it.
	OnOutputError func(error)
	// ReadyMethod, if set, is called with no parameters during Initialize,
	// which fails unless it succeeds: a handshake.
	ReadyMethod string
	// HealthMethod, if set, is called with no parameters by HealthCheck,
	// which reports unhealthy unless it succeeds.
	HealthMethod string
	// Handler handles what the child sends on its own: its requests and
	// notifications. It runs on the goroutine that reads the child's
	// output, one message at a time and in order, so it must not block: a
	// handler that waits for an answer from the child waits forever. If
	// nil, requests are answered with method not found and notifications
	// are dropped; jsonrpc2's HandlerWithError, used for that, answers no
	// notification, as JSON-RPC requires.
	Handler jsonrpc2.Handler
	// OnExit, if set, is called once when the child has exited and been
	// reaped, its standard error copied and flushed and its standard
	// output read, from the goroutine that reaped it. Calls in flight have
	// failed by then. Cleanup waits for it to return, so it must not block.
	OnExit func(Exit)
	// OwnStdio makes the child's stdin and stdout the caller's, to speak a
	// protocol of its own over (package mcp hands them to the MCP SDK):
	// Initialize starts the child and [Process.Stdio] hands them over.
	// Process then makes no JSON-RPC connection: Call and Notify fail, and
	// ReadyMethod, HealthMethod, Handler and OnOutputError must be empty.
	// The caller reports its calls with [Process.Begin], for
	// calls_in_flight and Exit.Calls, and output it cannot read with
	// [Process.OutputBroken]. Everything else (the group, the environment,
	// stderr, Cleanup, OnExit) is as for a JSON-RPC child.
	OwnStdio bool
	// CloseWait, if positive, makes Cleanup first close the child's stdin
	// only and wait up to this long (at most half of what is left of the
	// cleanup's deadline) for the child to exit by itself, reading its
	// output meanwhile so that calls in flight can still be answered.
	// SIGTERM and SIGKILL follow if it does not. This is how MCP's stdio
	// transport shuts a server down. If zero, Cleanup closes both pipes
	// and signals SIGTERM at once.
	CloseWait time.Duration
}

// Process is a child process and the JSON-RPC connection to it.
type Process struct {
	cfg  Config
	path string // Command[0], resolved

	mu       sync.Mutex // guards the fields below
	cmd      *exec.Cmd
	conn     link           // the JSON-RPC connection, or the caller's stdio (OwnStdio)
	rpc      *jsonrpc2.Conn // the JSON-RPC connection; nil with OwnStdio
	stdin    *os.File       // the child's stdin, closed alone for CloseWait
	started  time.Time
	exited   chan struct{} // closed once the child has been reaped
	exitErr  error         // cmd.Wait's result, once exited is closed
	reaped   chan struct{} // closed once the reaper has read the output, told OnExit and ended
	closing  bool          // Cleanup has begun: no new calls
	cleaned  chan struct{} // closed when Cleanup has ended
	cleanErr error

	inflight    atomic.Int64
	readErr     atomic.Pointer[error]     // the error that ended reading the child's stdout
	healthCalls atomic.Int64              // of inflight, the health calls (HealthCallContext's)
	callsAtEnd  atomic.Int64              // calls in flight when reading ended, before they were failed: Exit.Calls
	exitWaitEnd atomic.Pointer[time.Time] // when calls stop waiting for the exit: see awaitExit
}

var (
	_ lifecycle.Initializer   = (*Process)(nil)
	_ lifecycle.Cleaner       = (*Process)(nil)
	_ lifecycle.HealthChecker = (*Process)(nil)
)

// New checks cfg and returns a process that is not started until
// Initialize.
func New(cfg Config) (*Process, error) {
	if len(cfg.Command) == 0 || cfg.Command[0] == "" {
		return nil, errors.New("process: Config.Command is empty")
	}
	path, err := exec.LookPath(cfg.Command[0])
	if err != nil {
		return nil, fmt.Errorf("process: command %q: %w", cfg.Command[0], err)
	}
	if cfg.Dir != "" {
		if st, err := os.Stat(cfg.Dir); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("process: Config.Dir %q is not a directory", cfg.Dir)
		}
	}
	if cfg.Grace < 0 {
		return nil, fmt.Errorf("process: Config.Grace is negative (%v)", cfg.Grace)
	}
	if cfg.CloseWait < 0 {
		return nil, fmt.Errorf("process: Config.CloseWait is negative (%v)", cfg.CloseWait)
	}
	if err := checkEnv(cfg); err != nil {
		return nil, err
	}
	if cfg.OwnStdio && (cfg.ReadyMethod != "" || cfg.HealthMethod != "" || cfg.Handler != nil || cfg.OnOutputError != nil) {
		return nil, errors.New("process: Config.OwnStdio leaves the child's stdio to the caller: ReadyMethod, HealthMethod, Handler and OnOutputError are not for it")
	}
	if cfg.ID == "" {
		cfg.ID = "process"
	}
	if cfg.Grace == 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.Stderr == nil {
		cfg.Stderr = os.Stderr
	}
	return &Process{cfg: cfg, path: path}, nil
}

// ID returns the provider's id.
func (p *Process) ID() string { return p.cfg.ID }

// Protocol returns what the child serves, as configured.
func (p *Process) Protocol() string { return p.cfg.Protocol }

// Initialize starts the child in a process group of its own, connected by
// pipes, and performs the ReadyMethod handshake if one is configured.
func (p *Process) Initialize(ctx context.Context) error {
	p.mu.Lock()
	if p.cmd != nil || p.closing {
		p.mu.Unlock()
		return fmt.Errorf("process %q: already initialized", p.cfg.ID)
	}
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		p.mu.Unlock()
		return fmt.Errorf("process %q: stdin pipe: %w", p.cfg.ID, err)
	}
	stdoutR, stdoutW, err := os.Pipe()
	if err != nil {
		p.mu.Unlock()
		closeAll(stdinR, stdinW)
		return fmt.Errorf("process %q: stdout pipe: %w", p.cfg.ID, err)
	}
	cmd := exec.Command(p.path, p.cfg.Command[1:]...)
	cmd.Dir = p.cfg.Dir
	cmd.Env = childEnv(p.cfg, os.LookupEnv)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdinR, stdoutW, p.cfg.Stderr
	// A process group of its own; on Linux, Pdeathsig too: if this process
	// dies without cleaning up (a crash, a SIGKILL, a forced exit), the
	// kernel kills the child. See sys_linux.go and sys_other.go.
	cmd.SysProcAttr = sysProcAttr()
	// Wait also waits for the copy of stderr, which a grandchild that
	// outlives the child may hold open; bound that.
	cmd.WaitDelay = p.cfg.Grace

	// The kernel sends Pdeathsig when the thread that forked the child
	// exits, not only the process (golang/go#27505). So one goroutine,
	// locked to its thread, forks the child and holds that thread, blocked
	// in Wait, until the child is reaped: it is the reaper too.
	exited, reaped := make(chan struct{}), make(chan struct{})
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer close(reaped)
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		err := cmd.Wait()
		if f, ok := p.cfg.Stderr.(interface{ Flush() }); ok {
			f.Flush() // Wait has copied all of stderr
		}
		p.mu.Lock() // held by Initialize until conn is set
		p.exitErr = err
		conn := p.conn
		exit := exitOf(cmd.Process.Pid, cmd.ProcessState, err, p.closing)
		p.mu.Unlock()
		close(exited) // from now on, Running is false and a new call fails
		if conn != nil {
			awaitOutputEnd(conn, p.cfg.Grace)
			exit.Calls = max(p.callsAtEnd.Load(), p.inflight.Load()-p.healthCalls.Load())
			_ = conn.Close() // fail the calls still in flight
		}
		if p.cfg.OnExit != nil {
			p.cfg.OnExit(exit)
		}
	}()
	if err := <-started; err != nil {
		p.mu.Unlock()
		closeAll(stdinR, stdinW, stdoutR, stdoutW)
		return fmt.Errorf("process %q: start %q: %w", p.cfg.ID, p.cfg.Command[0], err)
	}
	closeAll(stdinR, stdoutW) // the child's ends

	p.cmd, p.started, p.exited, p.reaped, p.stdin = cmd, time.Now(), exited, reaped, stdinW
	tail := &outputTail{}
	if p.cfg.OwnStdio {
		p.conn = &ownStdio{pipes: pipes{r: stdoutR, w: stdinW, tail: tail}, p: p, ended: make(chan struct{})}
		p.mu.Unlock()
		return nil
	}
	handler := p.cfg.Handler
	if handler == nil {
		handler = jsonrpc2.HandlerWithError(refuse)
	}
	p.rpc = jsonrpc2.NewConn(context.Background(),
		&recordingStream{ObjectStream: jsonrpc2.NewPlainObjectStream(pipes{r: stdoutR, w: stdinW, tail: tail}), p: p, tail: tail},
		handler,
		jsonrpc2.SetLogger(log.New(io.Discard, "", 0)))
	p.conn = p.rpc
	p.mu.Unlock()

	if p.cfg.ReadyMethod != "" {
		if err := p.Call(ctx, p.cfg.ReadyMethod, nil, nil); err != nil {
			return fmt.Errorf("process %q: handshake: %w", p.cfg.ID, err)
		}
	}
	return nil
}

// awaitOutputEnd waits until conn has read the exited child's output to
// its end, so that the answers the child wrote before it exited reach
// their calls rather than being dropped when conn is closed. A grandchild
// that outlives the child may hold the output open: as for stderr (see
// cmd.WaitDelay), that gets the grace period.
func awaitOutputEnd(conn link, grace time.Duration) {
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-conn.DisconnectNotify():
	case <-t.C:
	}
}

// refuse answers the child's own requests: this side serves nothing.
func refuse(context.Context, *jsonrpc2.Conn, *jsonrpc2.Request) (any, error) {
	return nil, &jsonrpc2.Error{Code: jsonrpc2.CodeMethodNotFound, Message: "the client serves no methods"}
}

// Call calls method with params and decodes the result into result (a
// pointer, or nil to discard it). It fails with [ErrClosed] when the child
// is not running, and never hangs if the child exits or is cleaned up
// meanwhile: it fails at once, or, when the child has exited but a
// grandchild holds its output open, after the grace period. An error the
// child returns is a *jsonrpc2.Error. A call whose ctx has ended is not
// sent; one whose ctx ends before the answer returns ctx's error, and the
// answer, if it comes, is dropped.
//
// opts are jsonrpc2's: jsonrpc2.PickID lets the caller know the request's
// id, to cancel it by a protocol of its own (MCP's notifications/cancelled).
// Calls without a picked id are numbered 0, 1, 2 and so on; a caller that
// picks ids must keep clear of those, by picking every id or by picking
// string ids.
func (p *Process) Call(ctx context.Context, method string, params, result any, opts ...jsonrpc2.CallOption) error {
	conn, err := p.connFor(ctx)
	if err != nil {
		return fmt.Errorf("process %q: call %q: %w", p.cfg.ID, method, err)
	}
	p.inflight.Add(1)
	defer p.inflight.Add(-1)
	if ctx.Value(healthCallKey{}) != nil {
		p.healthCalls.Add(1)
		defer p.healthCalls.Add(-1)
	}
	var raw json.RawMessage
	err = conn.Call(ctx, method, params, &raw, opts...)
	switch {
	case errors.Is(err, jsonrpc2.ErrClosed):
		p.awaitExit(ctx)
		return fmt.Errorf("process %q: call %q: %w%s", p.cfg.ID, method, ErrClosed, p.why())
	case err != nil:
		return fmt.Errorf("process %q: call %q: %w", p.cfg.ID, method, err)
	case result != nil:
		if err := json.Unmarshal(raw, result); err != nil {
			return fmt.Errorf("process %q: call %q: decode result: %w", p.cfg.ID, method, err)
		}
	}
	return nil
}

// Notify sends method with params as a JSON-RPC notification, which has
// no answer. It fails with [ErrClosed] when the child is not running, and
// does not send if ctx has ended.
func (p *Process) Notify(ctx context.Context, method string, params any) error {
	conn, err := p.connFor(ctx)
	if err == nil {
		err = conn.Notify(ctx, method, params)
	}
	switch {
	case errors.Is(err, jsonrpc2.ErrClosed):
		return fmt.Errorf("process %q: notify %q: %w%s", p.cfg.ID, method, ErrClosed, p.why())
	case err != nil:
		return fmt.Errorf("process %q: notify %q: %w", p.cfg.ID, method, err)
	}
	return nil
}

// connFor returns the connection for a message to be sent within ctx.
func (p *Process) connFor(ctx context.Context) (*jsonrpc2.Conn, error) {
	if p.cfg.OwnStdio {
		return nil, errors.New("its stdio is its caller's (Config.OwnStdio)")
	}
	p.mu.Lock()
	conn, closing, exited := p.rpc, p.closing, p.exited
	p.mu.Unlock()
	if conn == nil || closing {
		return nil, ErrClosed
	}
	select {
	case <-exited: // its last answers may still be read, but no new call can be
		return nil, fmt.Errorf("%w%s", ErrClosed, p.why())
	default:
	}
	return conn, ctx.Err()
}

// exitReapWait bounds how long calls that lost their connection wait for
// the child to be reaped, to name its exit: the end of its stdout comes a
// moment before Wait returns, and on a loaded machine that moment can be
// long. The bound runs from the first such call: a child that closes its
// stdout and lives on holds up only the calls that fail within it.
const exitReapWait = 5 * time.Second

// awaitExit waits, within exitReapWait, for a child whose output ended to
// be reaped, unless Cleanup closed the connection or the output broke
// (what is not JSON-RPC ends the reading, not the child).
func (p *Process) awaitExit(ctx context.Context) {
	p.mu.Lock()
	exited, closing := p.exited, p.closing
	p.mu.Unlock()
	if exited == nil || closing {
		return
	}
	if err := p.readErr.Load(); err != nil && brokenOutput(*err) {
		return
	}
	end := time.Now().Add(exitReapWait)
	if !p.exitWaitEnd.CompareAndSwap(nil, &end) {
		end = *p.exitWaitEnd.Load()
	}
	t := time.NewTimer(time.Until(end))
	defer t.Stop()
	select {
	case <-exited:
	case <-t.C:
	case <-ctx.Done():
	}
}

// why says, for an error, why the connection ended: the child's exit, or
// what went wrong reading its output.
func (p *Process) why() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.exited:
		why := " (exit status 0)" // cmd.Wait's nil: a clean exit
		if p.exitErr != nil {
			why = " (" + p.exitErr.Error() + ")"
		}
		return why + p.outputError()
	default:
	}
	if p.closing {
		return " (cleaned up)"
	}
	return p.outputError()
}

// outputError describes the error that ended reading the child's output,
// if it was not the output's end.
func (p *Process) outputError() string {
	if err := p.readErr.Load(); err != nil && !errors.Is(*err, io.EOF) && !errors.Is(*err, os.ErrClosed) {
		return " (reading its output: " + (*err).Error() + ")"
	}
	return ""
}

// Cleanup stops the child: with CloseWait, it first closes the child's
// stdin and waits for it to exit by itself; then it fails the calls in
// flight, closes the pipes, sends SIGTERM to the process group, waits for the grace period (or less,
// to fit ctx's deadline), sends SIGKILL to whatever of the group is left,
// and reaps it. It returns [ErrKilled] if SIGKILL was needed, and an error
// if the group could not be reaped before ctx ended. It is idempotent, and
// safe after a failed Initialize.
func (p *Process) Cleanup(ctx context.Context) error {
	p.mu.Lock()
	if p.cleaned != nil { // a second call waits for the first
		cleaned := p.cleaned
		p.mu.Unlock()
		select {
		case <-cleaned:
			return p.cleanErr
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	p.closing = true
	p.cleaned = make(chan struct{})
	cmd, conn, exited, reaped, stdin := p.cmd, p.conn, p.exited, p.reaped, p.stdin
	p.mu.Unlock()
	defer close(p.cleaned)
	if cmd == nil {
		return nil
	}
	if p.cfg.CloseWait > 0 {
		p.closeStdin(ctx, stdin, reaped)
	}
	p.cleanErr = p.stop(ctx, cmd, conn, exited, reaped)
	return p.cleanErr
}

// closeStdin closes the child's stdin, and only that, and waits up to
// CloseWait, or half of what is left of ctx, for the child to exit and
// its output to be read to the end (reaped): calls in flight may so be
// answered.
func (p *Process) closeStdin(ctx context.Context, stdin *os.File, reaped chan struct{}) {
	_ = stdin.Close()
	wait := p.cfg.CloseWait
	if d, ok := ctx.Deadline(); ok {
		// The other half is for SIGTERM, SIGKILL and reaping.
		wait = min(wait, time.Until(d)/2)
	}
	timer := time.NewTimer(max(wait, 0))
	defer timer.Stop()
	select {
	case <-reaped:
	case <-timer.C:
	case <-ctx.Done():
	}
}

func (p *Process) stop(ctx context.Context, cmd *exec.Cmd, conn link, exited, reaped chan struct{}) error {
	_ = conn.Close() // fails calls in flight; closes stdin (EOF) and stdout
	pgid := cmd.Process.Pid

	grace := p.cfg.Grace
	if d, ok := ctx.Deadline(); ok {
		// Leave a quarter of what is left for SIGKILL and reaping.
		grace = min(grace, time.Until(d)*3/4)
	}
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	timer := time.NewTimer(max(grace, 0))
	defer timer.Stop()
	var killed bool
	select {
	case <-exited:
		// The leader is gone; the rest of the group gets what is left of
		// the grace period, then SIGKILL.
		killed = !waitGroupGone(pgid, timer.C)
	case <-timer.C:
		killed = true
	case <-ctx.Done():
		killed = true
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL) // ESRCH if nothing is left
	rctx, cancel := context.WithTimeout(ctx, reapWait)
	defer cancel()
	select {
	case <-exited:
	case <-rctx.Done():
		return fmt.Errorf("process %q (pid %d): not reaped after SIGKILL: %w", p.cfg.ID, pgid, rctx.Err())
	}
	if err := reapGroup(rctx, pgid); err != nil {
		return fmt.Errorf("process %q (process group %d): %w", p.cfg.ID, pgid, err)
	}
	select { // OnExit has returned, so Cleanup's caller has seen the exit
	case <-reaped:
	case <-rctx.Done():
		return fmt.Errorf("process %q (pid %d): Config.OnExit did not return: %w", p.cfg.ID, pgid, rctx.Err())
	}
	if killed {
		return fmt.Errorf("process %q (pid %d): %w (%v)", p.cfg.ID, pgid, ErrKilled, p.cfg.Grace)
	}
	return nil
}

// reapWait bounds the wait for a killed group to vanish, when ctx does not
// end it sooner. It is not the grace period, which is the child's time to
// exit and may be short: a killed group vanishes in milliseconds on an idle
// machine, but a loaded one may take seconds to run the reaper. Whatever
// is left after reapWait is a zombie that nobody reaps: Cleanup reports it
// rather than wait for it, even when ctx has no deadline.
const reapWait = 5 * time.Second

// waitGroupGone waits until no process of the group is left or until
// stop, and reports whether the group was gone.
func waitGroupGone(pgid int, stop <-chan time.Time) bool {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		reapMembers(pgid)
		if groupGone(pgid) {
			return true
		}
		select {
		case <-tick.C:
		case <-stop:
			return false
		}
	}
}

// reapGroup waits, within ctx, until every process of the group is gone,
// reaping those that were handed to this process (see BecomeSubreaper).
func reapGroup(ctx context.Context, pgid int) error {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		reapMembers(pgid)
		if groupGone(pgid) {
			return nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("members left after SIGKILL (zombies whose parent does not reap them?): %w", ctx.Err())
		}
	}
}

// reapMembers reaps the group's members that are children of this process
// and have exited: grandchildren handed to it as a subreaper. The child
// itself is reaped by its own goroutine, before this runs.
func reapMembers(pgid int) {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-pgid, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}

// groupGone reports whether no process of the group exists, zombies
// included.
func groupGone(pgid int) bool {
	return errors.Is(syscall.Kill(-pgid, 0), syscall.ESRCH)
}

// Running reports, without calling the child, whether a call could reach
// it: it was started, has not exited, is not being cleaned up, and its
// output can still be read. Routing asks this before every task, since a
// health check is only as fresh as its poll.
func (p *Process) Running() bool {
	p.mu.Lock()
	exited, started, closing := p.exited, p.cmd != nil, p.closing
	p.mu.Unlock()
	if !started || closing || p.outputError() != "" {
		return false
	}
	select {
	case <-exited:
		return false
	default:
		return true
	}
}

// Reaped reports whether the child has exited and been reaped, asking the
// kernel: a moment sooner than Running says so, while Wait copies the last
// of stderr. It costs a system call, which routing, asking Running before
// every task, does not pay; a view that must not show a dead child as
// running does.
func (p *Process) Reaped() bool {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	// Signal 0 goes through the pidfd, which names this process and no
	// later one that took its pid.
	return cmd != nil && errors.Is(cmd.Process.Signal(syscall.Signal(0)), os.ErrProcessDone)
}

// HealthCheck reports whether the child is running and, if HealthMethod is
// set, answering. Its resources: "pid", "running", "uptime_seconds",
// "calls_in_flight", "protocol", and after an exit, "exit".
func (p *Process) HealthCheck(ctx context.Context) lifecycle.Health {
	p.mu.Lock()
	res := map[string]any{
		"running":         false,
		"calls_in_flight": p.inflight.Load(),
		"protocol":        p.cfg.Protocol,
	}
	cmd, exited, closing := p.cmd, p.exited, p.closing
	if cmd != nil {
		res["pid"] = cmd.Process.Pid
		res["uptime_seconds"] = time.Since(p.started).Seconds()
	}
	p.mu.Unlock()
	switch {
	case cmd == nil:
		return lifecycle.Health{Status: lifecycle.StatusUnhealthy, Message: "not started", Resources: res}
	case closing:
		return lifecycle.Health{Status: lifecycle.StatusUnhealthy, Message: "cleaned up", Resources: res}
	}
	select {
	case <-exited:
		msg := "exited" + p.why()
		res["exit"] = msg
		return lifecycle.Health{Status: lifecycle.StatusUnhealthy, Message: msg, Resources: res}
	default:
		res["running"] = true
	}
	if why := p.outputError(); why != "" { // running, but no answer can come back
		msg := "its output is broken" + why
		res["output"] = msg
		return lifecycle.Health{Status: lifecycle.StatusUnhealthy, Message: msg, Resources: res}
	}
	if p.cfg.HealthMethod != "" {
		busy := p.inflight.Load()
		ctx, cancel := HealthCallContext(ctx)
		defer cancel()
		if err := p.Call(ctx, p.cfg.HealthMethod, nil, nil); err != nil {
			return lifecycle.Health{Status: HealthCallStatus(err, busy), Message: err.Error(), Resources: res}
		}
	}
	return lifecycle.Health{Status: lifecycle.StatusHealthy, Message: "running", Resources: res}
}

// HealthCallContext bounds a health call a little within ctx's deadline:
// a call that runs out of time then ends before the registry stops waiting
// for the check, and is judged by HealthCallStatus (a busy child is
// degraded) rather than taken for an unanswered check (unhealthy), which,
// racing, would flip a busy child between the two at every check.
//
// It also marks the call as a health call, which Exit.Calls does not
// count: a child that dies while it answers a health call did not die of
// a task.
func HealthCallContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx = context.WithValue(ctx, healthCallKey{}, true)
	deadline, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	left := time.Until(deadline)
	return context.WithDeadline(ctx, deadline.Add(-min(left/10, 250*time.Millisecond)))
}

// healthCallKey marks a health call's context (HealthCallContext).
type healthCallKey struct{}

// HealthCallStatus is the status of a health call that failed with err while busy
// other calls were in flight: a child that answers in turn, busy with a
// long call, cannot answer a health call before its deadline, and is busy,
// not broken (degraded: routing keeps it, readiness counts it); any other
// failure is unhealthy.
func HealthCallStatus(err error, busy int64) lifecycle.Status {
	if busy > 0 && errors.Is(err, context.DeadlineExceeded) {
		return lifecycle.StatusDegraded
	}
	return lifecycle.StatusUnhealthy
}

// pipes joins the child's stdout and stdin into the one stream the JSON-RPC
// connection reads and writes. Closing it closes both, which ends the
// connection's reader at once.
type pipes struct {
	r    *os.File // the child's stdout
	w    *os.File // the child's stdin
	tail *outputTail
}

func (s pipes) Read(b []byte) (int, error) {
	n, err := s.r.Read(b)
	s.tail.add(b[:n])
	return n, err
}
func (s pipes) Write(b []byte) (int, error) { return s.w.Write(b) }
func (s pipes) Close() error                { return errors.Join(s.w.Close(), s.r.Close()) }

// recordingStream keeps the error that ended reading, for error messages,
// naming the output that caused it.
type recordingStream struct {
	jsonrpc2.ObjectStream
	p    *Process
	tail *outputTail
}

func (s *recordingStream) ReadObject(v any) error {
	err := s.ObjectStream.ReadObject(v)
	if err == nil {
		return nil
	}
	if brokenOutput(err) {
		err = fmt.Errorf("%w; the output ended with %q", err, s.tail.bytes())
		if s.p.outputEnded(err) && s.p.cfg.OnOutputError != nil {
			s.p.cfg.OnOutputError(fmt.Errorf("process %q: its output is not JSON-RPC: %w", s.p.cfg.ID, err))
		}
		return err
	}
	s.p.outputEnded(err)
	return err
}

// outputEnded records err as what ended the reading of the child's output,
// unless something already has, and reports whether it was the first.
// The calls in flight are counted here, before the connection fails those
// that wait for an answer, which it does once reading ends: by the time
// the child is reaped they may all have returned.
func (p *Process) outputEnded(err error) bool {
	calls := p.inflight.Load() - p.healthCalls.Load()
	if !p.readErr.CompareAndSwap(nil, &err) {
		return false
	}
	p.callsAtEnd.Store(calls)
	return true
}

// brokenOutput reports whether err, which ended reading the child's
// output, is about what the child wrote rather than the output's end.
func brokenOutput(err error) bool {
	return !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrClosed) && !errors.Is(err, io.ErrUnexpectedEOF) &&
		!errors.Is(err, context.Canceled)
}

// outputTail keeps the last bytes read from the child's output, to show
// what could not be parsed. Only the connection's reader uses it.
type outputTail struct{ buf []byte }

const outputTailSize = 80

func (t *outputTail) add(b []byte) {
	t.buf = append(t.buf, b...)
	if len(t.buf) > outputTailSize {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-outputTailSize:]...)
	}
}

func (t *outputTail) bytes() []byte { return t.buf }

func closeAll(files ...*os.File) {
	for _, f := range files {
		_ = f.Close()
	}
}
