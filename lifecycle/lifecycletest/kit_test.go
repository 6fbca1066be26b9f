package lifecycletest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gleitzeit/gleitzeit/lifecycle"
	"github.com/gleitzeit/gleitzeit/lifecycle/lifecycletest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// spool is a provider with what real ones hold: a file open, and a
// goroutine that writes to it. Its faults are the broken providers'.
type spool struct {
	dir    string
	secret string
	fault  string

	mu     sync.Mutex
	f      *os.File
	stop   chan struct{}
	done   chan struct{}
	closed bool
}

func (s *spool) ID() string { return "spool" }

func (s *spool) Initialize(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		if s.fault == "secret-in-error" {
			return fmt.Errorf("open spool for user:%s: %w", s.secret, err)
		}
		return fmt.Errorf("open spool: %w", err)
	}
	f, err := os.CreateTemp(s.dir, "spool")
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.f, s.stop, s.done = f, make(chan struct{}), make(chan struct{})
	go s.flush(s.stop, s.done)
	return nil
}

func (s *spool) flush(stop, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

func (s *spool) Cleanup(ctx context.Context) error {
	if s.fault == "ignores-context" {
		time.Sleep(600 * time.Millisecond) // a flush that does not look at ctx
	}
	if s.fault == "releases-nothing-when-done" && ctx.Err() != nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.f != nil {
			leaked = append(leaked, s.f)
			s.f = nil // forgotten, not closed: "no time left"
		}
		return ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		if s.fault == "panics-without-initialize" && !s.closed {
			panic("cleanup of a spool never opened")
		}
		s.closed = true
		return nil
	}
	if s.fault != "leaks-goroutine" {
		close(s.stop)
		<-s.done
	}
	var err error
	if s.fault == "leaks-fd" {
		leaked = append(leaked, s.f) // held, as a leak is: else its finalizer would close it
	} else {
		err = s.f.Close()
	}
	s.f, s.closed = nil, true
	return err
}

func (s *spool) HealthCheck(context.Context) lifecycle.Health {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fault == "health-reopens" && s.closed && s.f == nil {
		if f, err := os.CreateTemp(s.dir, "probe"); err == nil {
			leaked = append(leaked, f) // a probe that reconnects, and never closes
		}
	}
	open := s.f != nil
	if s.fault == "health-lies" && s.closed {
		open = true
	}
	if !open {
		return lifecycle.Health{Status: lifecycle.StatusUnhealthy, Message: "closed", Resources: map[string]any{"open": false}}
	}
	return lifecycle.Health{Status: lifecycle.StatusHealthy, Message: "open", Resources: map[string]any{"open": true}}
}

// broken maps each fault to the one property it breaks.
var broken = map[string]string{
	"leaks-goroutine":            lifecycletest.NoLeaks,
	"leaks-fd":                   lifecycletest.NoLeaks,
	"ignores-context":            lifecycletest.ContextDone,
	"health-lies":                lifecycletest.Health,
	"secret-in-error":            lifecycletest.Identity,
	"panics-without-initialize":  lifecycletest.CleanupWithoutInitialize,
	"releases-nothing-when-done": lifecycletest.NoLeaks,
	"health-reopens":             lifecycletest.NoLeaks,
}

const faultEnv = "LIFECYCLETEST_FAULT"

// leaked keeps the files the leaks-fd spool never closes.
var leaked []*os.File

func run(t *testing.T, fault string) {
	dir := t.TempDir()
	lifecycletest.Run(t, func(*testing.T) lifecycle.Provider {
		return &spool{dir: dir, secret: "hunter2", fault: fault}
	}, lifecycletest.Secret("hunter2"), lifecycletest.Bound(200*time.Millisecond), lifecycletest.Timeout(5*time.Second))
}

func TestAProviderThatKeepsTheContractPasses(t *testing.T) { run(t, "") }

// TestFault runs the kit against one broken provider; it is meant to fail,
// and runs only in the process TestEachFaultFailsItsOwnProperty starts.
func TestFault(t *testing.T) {
	fault := os.Getenv(faultEnv)
	if fault == "" {
		t.Skip("run by TestEachFaultFailsItsOwnProperty, in a process of its own")
	}
	run(t, fault)
}

// Each broken provider makes exactly the subtest of the property it
// breaks fail, and no other.
func TestEachFaultFailsItsOwnProperty(t *testing.T) {
	failed := regexp.MustCompile(`--- FAIL: TestFault/(\w+)`)
	for fault, property := range broken {
		t.Run(fault, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestFault$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), faultEnv+"="+fault)
			cmd.Dir = filepath.Dir(os.Args[0])
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("the kit passed a provider that %s, or did not run: %v\n%s", fault, err, out)
			}
			var got []string
			for _, m := range failed.FindAllStringSubmatch(string(out), -1) {
				got = append(got, m[1])
			}
			if !slices.Equal(got, []string{property}) {
				t.Errorf("a provider that %s failed %v, want [%s]\n%s", fault, got, property, out)
			}
		})
	}
}
