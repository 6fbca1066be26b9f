package lifecycle

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// initSeq initializes providers one after another, each bounded by its
// timeout and by Start's context, with one goroutine for the whole
// sequence rather than one for each Initialize.
//
// A hung Initialize must not hang Start, so the Initialize methods run on
// a goroutine of their own, the runner, while the caller's goroutine
// watches: it waits for the runner to finish, for its context to end, or
// for its watchdog, one timer for the sequence, to fire. Most Initialize
// methods return long before their deadline, and with one timeout for
// every provider each deadline is later than the one before, so the
// watchdog is set once and, on firing early, set again to the deadline of
// the Initialize then running; the runner sets it only for a deadline
// earlier than the one it is set to.
//
// Exactly one side decides the outcome of each Initialize: the runner when
// it returns before its deadline and its context's end, the watcher
// otherwise. Both decide under mu, and the one that decides sets over when
// the sequence ends there; the runner then stops, reporting the return
// that came late, after the outcome (told). The watcher also sets over,
// blaming no provider, when the caller's context ends between two calls:
// the runner then blames the provider it would have begun next.
type initSeq struct {
	r     *Registry
	ctx   context.Context // the caller's: Start's, or StartProvider's
	order []*node
	done  chan struct{} // closed when the runner has stopped
	told  chan struct{} // closed once the watcher, if it decided an outcome, has reported it

	mu       sync.Mutex // guards the fields below
	cur      initCall   // the Initialize running; n is nil between calls
	armed    time.Time  // the time the watchdog is set for; zero if it is not
	watchdog *time.Timer
	over     bool  // the sequence has ended: the runner begins nothing more
	count    int   // providers initialized
	failed   *node // the provider whose error ended the sequence
	err      error // its error
}

// initCall is one Initialize in progress.
type initCall struct {
	n        *node
	began    time.Time
	deadline time.Time
}

// initAll initializes order, one after another, and returns how many it
// initialized and, if one failed or could not begin, which and why. It
// stops at the first failure, and at a provider whose Initialize could not
// begin because the registry is stopping; one whose cleanup another caller
// claimed is passed over.
func (r *Registry) initAll(ctx context.Context, order []*node) (initialized int, failed *node, err error) {
	if len(order) == 0 {
		return 0, nil, nil
	}
	if err := ctx.Err(); err != nil { // no goroutine for a sequence that cannot begin
		return 0, order[0], providerError(order[0].id, "initialize", fmt.Errorf("not begun: %w", err))
	}
	s := &initSeq{r: r, ctx: ctx, order: order, done: make(chan struct{}), told: make(chan struct{})}
	s.watchdog = time.NewTimer(time.Hour)
	s.watchdog.Stop()
	defer s.watchdog.Stop()
	go s.run()
	s.watch()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count, s.failed, s.err
}

// watch waits until the sequence is over: the runner has finished, or the
// Initialize running has outlived its deadline or the caller's context.
func (s *initSeq) watch() {
	for {
		select {
		case <-s.done:
			return
		case <-s.ctx.Done():
			if s.cutShort(true) {
				return
			}
			// No Initialize runs: the runner begins none now, and stops.
			<-s.done
			return
		case <-s.watchdog.C:
			if s.cutShort(false) {
				return
			}
		}
	}
}

// cutShort ends the sequence if an Initialize runs whose deadline has
// passed, or any that runs when ctxDone, deciding its outcome, and reports
// whether it did. Otherwise it sets the watchdog for the Initialize
// running, if any; and if ctxDone, it marks the sequence over so that the
// runner begins no further Initialize.
func (s *initSeq) cutShort(ctxDone bool) bool {
	s.mu.Lock()
	call := s.cur
	if call.n == nil || (!ctxDone && time.Now().Before(call.deadline)) {
		if ctxDone {
			s.over = true
		} else if call.n != nil {
			s.arm(call.deadline)
		} else {
			s.armed = time.Time{}
		}
		s.mu.Unlock()
		return false
	}
	err := s.overdue(call)
	s.over, s.failed, s.err = true, call.n, err
	s.mu.Unlock()
	s.r.initEnded(call.n, time.Since(call.began), err)
	close(s.told) // the runner reports the late return after this outcome
	return true
}

// arm sets the watchdog to fire at t. s.mu is held.
func (s *initSeq) arm(t time.Time) {
	s.armed = t
	s.watchdog.Reset(time.Until(t))
}

// overdue is the error of an Initialize that did not return in time: its
// caller's context ended, or its own deadline passed.
func (s *initSeq) overdue(call initCall) error {
	if err := s.ctx.Err(); err != nil {
		took := time.Since(call.began)
		return providerError(call.n.id, "initialize", fmt.Errorf("abandoned after %v: context done: %w", took.Round(time.Microsecond), err))
	}
	return providerError(call.n.id, "initialize", fmt.Errorf("did not return within its %v timeout: %w", call.n.timeout, context.DeadlineExceeded))
}

// run is the runner: it initializes the providers of the sequence until
// the sequence is over.
func (s *initSeq) run() {
	defer close(s.done)
	for _, n := range s.order {
		if !s.step(n) {
			return
		}
	}
}

// stop ends the sequence at n with err, unless the watcher ended it first
// by cutting an Initialize short, and reports false, for run to return. A
// sequence the watcher ended between two calls (its context ended) blames
// no provider yet: n, which did not begin, is the one.
func (s *initSeq) stop(n *node, err error) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed == nil {
		s.over, s.failed, s.err = true, n, err
	}
	return false
}

// step initializes n and reports whether the sequence goes on.
func (s *initSeq) step(n *node) bool {
	r := s.r
	if err := s.ctx.Err(); err != nil { // Start ran out of time, or Stop cancelled it
		return s.stop(n, providerError(n.id, "initialize", fmt.Errorf("not begun: %w", err)))
	}
	// Whether the Initialize begins and whether the watcher sees it are
	// decided together: the watcher never cuts short one that has not
	// begun, nor misses one that has.
	began := time.Now()
	s.mu.Lock()
	if s.over {
		s.mu.Unlock()
		return s.stop(n, providerError(n.id, "initialize", fmt.Errorf("not begun: %w", s.ctx.Err())))
	}
	if !n.beginInit(r.stopping.Load()) {
		s.mu.Unlock()
		if r.stopping.Load() {
			return s.stop(n, errNotBegun)
		}
		return true // unregistered since the sequence was chosen
	}
	if n.init == nil {
		s.count++
		s.mu.Unlock()
		n.setState(initDone, nil)
		if !r.quiet() {
			r.emit(ProviderInitialized{ID: n.id})
		}
		return true
	}
	call := initCall{n: n, began: began, deadline: began.Add(n.timeout)}
	s.cur = call
	if s.armed.IsZero() || call.deadline.Before(s.armed) {
		s.arm(call.deadline)
	}
	s.mu.Unlock()

	ctx := newInitCtx(s.ctx, call.deadline)
	err := n.callInit(ctx)
	ctx.release()
	now := time.Now() // once: the clock is a syscall on some machines
	took := now.Sub(began)

	s.mu.Lock()
	s.cur = initCall{}
	if s.over { // the watcher decided: this return is late
		s.mu.Unlock()
		<-s.told // bounded by the watcher's report of the outcome
		r.emit(ProviderReturnedLate{ID: n.id, Op: "initialize", Duration: took, Err: lateError(n.id, "initialize", err)})
		return false
	}
	// A return after the deadline is late even if the watcher has not
	// noticed the deadline yet: the outcome follows the clock.
	late := s.ctx.Err() != nil || !now.Before(call.deadline)
	if late {
		lateErr := err
		err = s.overdue(call)
		s.over, s.failed, s.err = true, n, err
		s.mu.Unlock()
		r.initEnded(n, took, err)
		r.emit(ProviderReturnedLate{ID: n.id, Op: "initialize", Duration: took, Err: lateError(n.id, "initialize", lateErr)})
		return false
	}
	if err != nil {
		err = providerError(n.id, "initialize", err)
		s.over, s.failed, s.err = true, n, err
	} else {
		s.count++
	}
	s.mu.Unlock()
	r.initEnded(n, took, err)
	return err == nil
}

// initEnded records the outcome of n's Initialize.
func (r *Registry) initEnded(n *node, took time.Duration, err error) {
	if err != nil {
		n.setState(initFailed, err)
	} else {
		n.setState(initDone, nil)
	}
	if err != nil || !r.quiet() { // a failure is logged at warn level
		r.emit(ProviderInitialized{ID: n.id, Duration: took, Err: err})
	}
}
