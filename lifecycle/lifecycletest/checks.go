package lifecycletest

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// lifecycle: Start and Stop through a registry, then the provider's own
// cleanup a second time.
func (k *kit) lifecycle(t *testing.T) {
	p := k.make(t)
	reg := lifecycle.NewRegistry(lifecycle.WithDefaultTimeout(k.timeout))
	if err := reg.Register(p); err != nil {
		t.Fatalf("Register: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), k.timeout)
	defer cancel()
	if err := reg.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	stopErr := reg.Stop(ctx)
	if stopErr != nil {
		t.Errorf("Stop: %v", stopErr)
	}
	o := reg.Report().Providers[p.ID()]
	want := lifecycle.ResultOK
	if lifecycle.CleanupMethod(p) == "" {
		want = lifecycle.ResultSkipped
	}
	if o.Result != want {
		t.Errorf("the registry's cleanup: %s (%v), want %s", o.Result, o.Err, want)
	}
	if err := reg.Stop(ctx); err != stopErr || reg.Report().Providers[p.ID()] != o {
		t.Errorf("a second Stop did not return the first one's result: %v", err)
	}
	if f := lifecycle.CleanupFunc(p); f != nil {
		second := call(ctx, f, k.timeout)
		switch {
		case !second.returned, second.panicked != nil:
			t.Errorf("a second %s, by the provider's own method, %s", o.Method, second)
		case second.err != nil && strings.TrimSpace(second.err.Error()) == "":
			t.Errorf("a second %s returned an error that says nothing", o.Method)
		}
	}
}

// cleanupWithoutInitialize: a cleanup with no Initialize, and one after
// a failed Initialize, hold nothing and do not panic.
func (k *kit) cleanupWithoutInitialize(t *testing.T) {
	before := snapshot()
	p := k.make(t)
	// Resources are acquired in Initialize, never in the constructor.
	if left := before.leftover(k.bound); left != "" {
		t.Errorf("fresh made a provider that holds, before its Initialize: %s", left)
	}
	if o := k.cleanup(context.Background(), p); !o.returned || o.panicked != nil {
		t.Errorf("a cleanup with no Initialize %s", o)
	}
	p, init := k.failedInitialize(t)
	switch {
	case !init.returned:
		// The registry never cleans up while Initialize runs; nor does Run.
		t.Fatalf("Initialize, to fail, %s", init)
	case init.err == nil:
		t.Logf("Initialize did not fail (%s); cleaned up all the same", init)
	}
	if o := k.cleanup(context.Background(), p); !o.returned || o.panicked != nil {
		t.Errorf("a cleanup after a failed Initialize %s", o)
	}
	if left := before.leftover(k.timeout); left != "" {
		t.Errorf("after the cleanups, left: %s", left)
	}
}

// failedInitialize makes a provider whose Initialize has failed: the
// caller's failing one, or one given a context that is done.
func (k *kit) failedInitialize(t *testing.T) (lifecycle.Provider, outcome) {
	t.Helper()
	if k.failing != nil {
		p := k.failing(t)
		return p, k.initialize(context.Background(), p)
	}
	p := k.make(t)
	return p, k.initialize(done(), p)
}

// contextDone: Initialize and the cleanup return within the bound of
// their context's end, done before the call or during it.
func (k *kit) contextDone(t *testing.T) {
	check := func(what string, o outcome, ended time.Duration) {
		t.Helper()
		switch {
		case !o.returned:
			t.Errorf("%s %s: not within %v of its context's end", what, o, k.bound)
		case o.panicked != nil:
			t.Errorf("%s %s", what, o)
		case o.took > ended+k.bound:
			t.Errorf("%s %s: more than %v after its context ended", what, o, k.bound)
		}
	}
	midway := 10 * time.Millisecond

	p := k.make(t)
	check("Initialize with a context done already", k.within(done(), initializeOf(p), 0), 0)
	k.cleanup(context.Background(), p)

	p = k.make(t)
	ctx, cancel := context.WithTimeout(context.Background(), midway)
	check("Initialize with a context that ends 10ms in", k.within(ctx, initializeOf(p), midway), midway)
	cancel()
	k.cleanup(context.Background(), p)

	if lifecycle.CleanupFunc(p) == nil {
		return
	}
	p = k.make(t)
	k.mustInitialize(t, p)
	check("the cleanup with a context done already", k.within(done(), lifecycle.CleanupFunc(p), 0), 0)

	p = k.make(t)
	k.mustInitialize(t, p)
	ctx, cancel = context.WithTimeout(context.Background(), midway)
	check("the cleanup with a context that ends 10ms in", k.within(ctx, lifecycle.CleanupFunc(p), midway), midway)
	cancel()
}

// within calls f, whose context ends at ended, and waits for it until
// the bound after that.
func (k *kit) within(ctx context.Context, f func(context.Context) error, ended time.Duration) outcome {
	if f == nil {
		return outcome{returned: true}
	}
	return call(ctx, f, ended+k.bound)
}

func initializeOf(p lifecycle.Provider) func(context.Context) error {
	if i, ok := p.(lifecycle.Initializer); ok {
		return i.Initialize
	}
	return nil
}

// health: before Initialize and after the cleanup, not healthy and
// nothing held; after Initialize, healthy or degraded.
func (k *kit) health(t *testing.T) {
	p := k.make(t)
	hc, ok := p.(lifecycle.HealthChecker)
	if !ok {
		t.Skip("the provider has no HealthCheck: the registry reads it as healthy once initialized")
	}
	if h := k.check(t, hc); up(h.Status) {
		t.Errorf("before Initialize, health is %s (%q): it holds nothing yet", h.Status, h.Message)
	}
	k.mustInitialize(t, p)
	if h := k.check(t, hc); !up(h.Status) {
		t.Errorf("after Initialize, with its peer up, health is %s (%q)", h.Status, h.Message)
	}
	if o := k.cleanup(context.Background(), p); !o.returned || o.panicked != nil {
		t.Fatalf("the cleanup %s", o)
	}
	// Released within the bound: a connection's close may be seen a
	// moment after the cleanup returns.
	var h lifecycle.Health
	var held []string
	for deadline := time.Now().Add(k.bound); ; time.Sleep(10 * time.Millisecond) {
		h = k.check(t, hc)
		held = k.stillHeld(h.Resources)
		if !up(h.Status) && len(held) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if up(h.Status) {
		t.Errorf("after the cleanup, health is %s (%q)", h.Status, h.Message)
	}
	for _, r := range held {
		t.Errorf("after the cleanup, the health still names %s as held", r)
	}
}

func up(s lifecycle.Status) bool {
	return s == lifecycle.StatusHealthy || s == lifecycle.StatusDegraded
}

// check runs a health check within the timeout.
func (k *kit) check(t *testing.T, hc lifecycle.HealthChecker) lifecycle.Health {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), k.timeout)
	defer cancel()
	var h lifecycle.Health
	o := call(ctx, func(ctx context.Context) error { h = hc.HealthCheck(ctx); return nil }, k.timeout)
	if !o.returned || o.panicked != nil {
		t.Fatalf("HealthCheck %s", o)
	}
	return h
}

// stillHeld names the resources that say they are held: a bool that is
// true, or a number that is not 0, among those named for what is held.
func (k *kit) stillHeld(res map[string]any) []string {
	var held []string
	for key, v := range res {
		named := k.named(key)
		switch v := v.(type) {
		case bool:
			if named && v {
				held = append(held, fmt.Sprintf("%s=true", key))
			}
		case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
			if named && fmt.Sprint(v) != "0" {
				held = append(held, fmt.Sprintf("%s=%v", key, v))
			}
		}
	}
	return held
}

// heldNames are the resources that say something is held, besides the
// patterns named reads.
var heldNames = []string{"open", "running", "connected", "reachable", "http_session", "session", "in_use"}

// named reports whether key names something held: open, running,
// connected, reachable, http_session, session, in_use, open_*, *_open,
// *_in_flight, or one the caller named with Held.
func (k *kit) named(key string) bool {
	if slices.Contains(k.held, key) || slices.Contains(heldNames, key) {
		return true
	}
	return strings.HasPrefix(key, "open_") || strings.HasSuffix(key, "_open") || strings.HasSuffix(key, "_in_flight")
}

// noLeaks: nothing the provider made outlives its cleanup: one with
// health checks before and after it, one given a context that is done
// (the registry gives a Stop's last cleanups such a context, and a close
// that needs no time must still happen), and one raced by health checks,
// unless the caller skipped Concurrent.
func (k *kit) noLeaks(t *testing.T) {
	if !procfs() {
		t.Skip("no /proc here to count descriptors, children and sockets by")
	}
	before := snapshot()
	scenarios := []struct {
		name string
		ctx  context.Context
		race bool
	}{
		{"a cleanup between health checks", context.Background(), false},
		{"a cleanup with a context done already", done(), false},
		{"a cleanup raced by a health check", context.Background(), true},
	}
	for _, sc := range scenarios {
		if _, one := k.skip[Concurrent]; sc.race && one {
			t.Logf("%s: left out with Concurrent: the provider is not for concurrent use", sc.name)
			continue
		}
		p := k.make(t)
		k.mustInitialize(t, p)
		check := k.checker(p)
		check() // a check may open what a cleanup must close
		var raced sync.WaitGroup
		if sc.race {
			raced.Go(check)
		}
		if o := k.cleanup(sc.ctx, p); !o.returned || o.panicked != nil {
			t.Errorf("%s: the cleanup %s", sc.name, o)
		}
		if !waitGroup(&raced, k.timeout) {
			t.Fatalf("%s: the health check had not returned after %v", sc.name, k.timeout)
		}
		check() // nor may a check after the cleanup open anything again
		if left := before.leftover(k.timeout); left != "" {
			t.Errorf("after %s, left: %s", sc.name, left)
			return
		}
	}
}

// concurrent: health checks all through a cleanup, and a cleanup that
// begins during a health check.
func (k *kit) concurrent(t *testing.T) {
	p := k.make(t)
	k.mustInitialize(t, p)
	check := k.checker(p)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var panics []any
	for range 4 {
		wg.Go(func() {
			defer func() {
				if v := recover(); v != nil {
					mu.Lock()
					panics = append(panics, v)
					mu.Unlock()
				}
			}()
			for {
				select {
				case <-stop:
					return
				default:
					check()
				}
			}
		})
	}
	time.Sleep(5 * time.Millisecond) // the checks under way
	o := k.cleanup(context.Background(), p)
	close(stop)
	if !waitGroup(&wg, k.timeout) {
		t.Fatalf("health checks had not returned %v after the cleanup", k.timeout)
	}
	if !o.returned || o.panicked != nil {
		t.Errorf("a cleanup during health checks %s", o)
	}
	for _, v := range panics {
		t.Errorf("a health check during the cleanup panicked: %v", v)
	}

	p = k.make(t)
	k.mustInitialize(t, p)
	began, checked := make(chan struct{}), make(chan outcome, 1)
	go func() {
		checked <- call(context.Background(), func(context.Context) error { close(began); k.checker(p)(); return nil }, k.timeout)
	}()
	<-began // the check under way: the cleanup begins during it
	if o := k.cleanup(context.Background(), p); !o.returned || o.panicked != nil {
		t.Errorf("a cleanup begun during a health check %s", o)
	}
	if c := <-checked; !c.returned || c.panicked != nil {
		t.Errorf("a health check during which the cleanup began %s", c)
	}
}

// identity: a stable, non-empty ID, and no secret in what the provider
// says.
func (k *kit) identity(t *testing.T) {
	p := k.make(t)
	id := p.ID()
	if id == "" {
		t.Fatal("the ID is empty")
	}
	var said []string
	say := func(stage string, h lifecycle.Health) {
		said = append(said, stage+" health: "+h.Message+" "+fmt.Sprint(h.Resources))
	}
	hc, _ := p.(lifecycle.HealthChecker)
	if hc != nil {
		say("before Initialize", k.check(t, hc))
	}
	k.mustInitialize(t, p)
	if hc != nil {
		say("initialized", k.check(t, hc))
	}
	if o := k.cleanup(context.Background(), p); o.err != nil {
		said = append(said, "cleanup: "+o.err.Error())
	}
	if hc != nil {
		say("cleaned up", k.check(t, hc))
	}
	if o := k.cleanup(context.Background(), p); o.err != nil {
		said = append(said, "second cleanup: "+o.err.Error())
	}
	if p.ID() != id {
		t.Errorf("the ID changed from %q to %q", id, p.ID())
	}
	failed, init := k.failedInitialize(t)
	if init.err != nil {
		said = append(said, "failed Initialize: "+init.err.Error())
	}
	if hc, ok := failed.(lifecycle.HealthChecker); ok {
		say("after a failed Initialize", k.check(t, hc))
	}
	k.cleanup(context.Background(), failed)
	if k.secret == "" {
		return
	}
	spellings := []string{k.secret, url.QueryEscape(k.secret), url.PathEscape(k.secret)}
	for _, s := range said {
		for _, secret := range spellings {
			if strings.Contains(s, secret) {
				t.Errorf("the secret is in what the provider said: %s", strings.ReplaceAll(s, secret, "<the secret>"))
			}
		}
	}
}

// waitGroup waits for wg at most d.
func waitGroup(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// checker returns a health check of p within the timeout, for any
// goroutine: unlike check, it does not end the test. A provider without
// HealthCheck gets one that does nothing.
func (k *kit) checker(p lifecycle.Provider) func() {
	hc, ok := p.(lifecycle.HealthChecker)
	if !ok {
		return func() {}
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), k.timeout)
		defer cancel()
		hc.HealthCheck(ctx)
	}
}
