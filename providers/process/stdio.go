package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
)

// link is what reads and writes the child's stdio: the JSON-RPC
// connection, or the caller's own protocol over the pipes (OwnStdio).
// Close fails what waits for an answer and closes both pipes;
// DisconnectNotify is closed once reading the output has ended.
type link interface {
	io.Closer
	DisconnectNotify() <-chan struct{}
}

// ownStdio is the child's stdio as handed to a caller that speaks over it
// itself (OwnStdio). Its reading side records how the output ended, as the
// JSON-RPC connection's does.
type ownStdio struct {
	pipes
	p      *Process
	once   sync.Once
	ended  chan struct{}
	handed bool // Stdio has been called; guarded by p.mu
}

func (s *ownStdio) Read(b []byte) (int, error) {
	n, err := s.pipes.Read(b)
	if err != nil {
		s.p.outputEnded(err)
		s.end()
	}
	return n, err
}

// end marks the reading of the output as over: read to its end, or
// closed, after which nobody reads it.
func (s *ownStdio) end() { s.once.Do(func() { close(s.ended) }) }

func (s *ownStdio) DisconnectNotify() <-chan struct{} { return s.ended }

// Close closes both pipes, which ends the caller's reading at once.
func (s *ownStdio) Close() error {
	defer s.end()
	return s.pipes.Close()
}

// stdout and stdin are the two halves of ownStdio, as a caller takes them.
type (
	stdout struct{ s *ownStdio }
	stdin  struct{ s *ownStdio }
)

func (o stdout) Read(b []byte) (int, error) { return o.s.Read(b) }
func (o stdout) Close() error               { return o.s.pipes.r.Close() }
func (i stdin) Write(b []byte) (int, error) { return i.s.pipes.w.Write(b) }
func (i stdin) Close() error                { return i.s.pipes.w.Close() }

// Stdio hands over the child's stdout and stdin, once, after Initialize
// with [Config.OwnStdio]. Whatever reads stdout must read it to its end or
// close it: the child's exit is reported (OnExit) once its output has been
// read to the end, or after the grace period.
func (p *Process) Stdio() (io.ReadCloser, io.WriteCloser, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.conn.(*ownStdio)
	switch {
	case !p.cfg.OwnStdio:
		return nil, nil, fmt.Errorf("process %q: Stdio is for Config.OwnStdio", p.cfg.ID)
	case !ok || p.closing:
		return nil, nil, fmt.Errorf("process %q: stdio: %w", p.cfg.ID, ErrClosed)
	case s.handed:
		return nil, nil, fmt.Errorf("process %q: stdio already handed over", p.cfg.ID)
	}
	s.handed = true
	return stdout{s}, stdin{s}, nil
}

// Begin counts a call that the caller of [Config.OwnStdio] makes over the
// child's stdio, until end is called: in calls_in_flight, and in
// Exit.Calls if the child's output ends meanwhile. A call made within
// [HealthCallContext]'s context counts as a health call, which Exit.Calls
// leaves out.
func (p *Process) Begin(ctx context.Context) (end func()) {
	p.inflight.Add(1)
	if ctx.Value(healthCallKey{}) != nil {
		p.healthCalls.Add(1)
		return func() { p.healthCalls.Add(-1); p.inflight.Add(-1) }
	}
	return func() { p.inflight.Add(-1) }
}

// OutputBroken is told, by the caller of [Config.OwnStdio], that the
// child's output is not its protocol and reading it has ended: the child
// is then no longer Running, and its health says why. The end of the
// output, or its closing, is not broken output, and is ignored.
func (p *Process) OutputBroken(err error) {
	if err == nil || !brokenOutput(err) || errors.Is(err, context.DeadlineExceeded) {
		return
	}
	p.outputEnded(err)
}

// Closed is the error of a call that found the child gone, for a caller
// of [Config.OwnStdio]: [ErrClosed] and why (its exit, or what broke its
// output). Like Call, it first waits, briefly and within ctx, for a child
// whose output ended to be reaped, to name its exit.
func (p *Process) Closed(ctx context.Context) error {
	p.awaitExit(ctx)
	return fmt.Errorf("process %q: %w%s", p.cfg.ID, ErrClosed, p.why())
}
