package app

import (
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/gleitzeit/gleitzeit/app/config"
	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// transitions logs the service's changes of state once each, not once per
// health poll or per request: a provider turning unhealthy and healthy
// again, readiness turning 503 and 200, and the task store becoming
// unavailable and available again. The way down is a warning or an error,
// naming what and why; the way back is logged too, so that an outage has
// an end in the log. (The audit log's failure and recovery are told by the
// writer itself: see auditFailed.)
type transitions struct {
	log *zap.Logger

	mu        sync.Mutex        // guards unhealthy and readiness
	unhealthy map[string]string // providers the last poll called unhealthy, and why
	readiness int               // 0 not judged yet, 1 ready, -1 not ready

	storeMu     sync.Mutex // guards storeDown and storeTurned
	storeDown   bool       // a record failed or the store's health check did, and no record or probe has committed since
	storeTurned time.Time  // when storeDown last changed
}

func newTransitions(log *zap.Logger) *transitions {
	return &transitions{log: log, unhealthy: map[string]string{}}
}

// health notes one health poll's report, begun at the time given: the
// store's failed health check, and each provider (but the store, and the
// audit log, which tells of its own failures) that turned unhealthy or
// came back. A store whose health check passes is not available again for
// that: its ping may pass while it cannot record a task (a full disk);
// only a record or the poll's probe (storeProbe) says it is.
func (t *transitions) health(begun time.Time, rep lifecycle.HealthReport) {
	if h, ok := rep.Providers[config.StoreID]; ok && h.Status == lifecycle.StatusUnhealthy {
		t.storeFailed(begun, "health check: "+h.Message)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, h := range rep.Providers {
		if id == config.StoreID || id == config.AuditID {
			continue
		}
		_, was := t.unhealthy[id]
		switch now := h.Status == lifecycle.StatusUnhealthy; {
		case now && !was:
			t.unhealthy[id] = h.Message
			t.log.Warn("provider unhealthy", zap.String("provider", id), zap.String("reason", lifecycle.Redact(h.Message)))
		case !now && was:
			delete(t.unhealthy, id)
			t.log.Info("provider healthy again", zap.String("provider", id), zap.Stringer("status", h.Status))
		}
	}
	for id := range t.unhealthy { // removed since: no transition to tell
		if _, ok := rep.Providers[id]; !ok {
			delete(t.unhealthy, id)
		}
	}
}

// ready notes readiness as a poll judged it, with the reasons when not.
func (t *transitions) ready(ok bool, why []string) {
	state := -1
	if ok {
		state = 1
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if state == t.readiness {
		return
	}
	first := t.readiness == 0
	t.readiness = state
	reasons := make([]string, len(why))
	for i, r := range why {
		reasons[i] = lifecycle.Redact(r)
	}
	switch {
	case !ok:
		t.log.Warn("not ready: /readyz answers 503", zap.Strings("reasons", reasons))
	case first:
		t.log.Info("ready: /readyz answers 200")
	default:
		t.log.Info("ready again: /readyz answers 200")
	}
}

// storeFailed notes that the task store failed to record a task, or its
// health check failed, in an attempt begun at the time given: the first
// failure since it last worked is logged. An attempt begun before the
// store was last noted available again is stale, and ignored: a record
// that hung through an outage and fails after the store came back must not
// turn it unavailable again.
func (t *transitions) storeFailed(begun time.Time, why string) {
	t.storeMu.Lock()
	defer t.storeMu.Unlock()
	if t.storeDown || begun.Before(t.storeTurned) {
		return
	}
	t.storeDown, t.storeTurned = true, time.Now()
	t.log.Error("task store unavailable: tasks are refused until it is back",
		zap.String("store", config.StoreID), zap.String("error", lifecycle.Redact(why)))
}

// storeWorks notes that the task store committed a task's record, or the
// health poll's probe, in an attempt begun at the time given: the first
// success after a failure is logged. An attempt begun before the failure
// was noted proves nothing of the store since (a record that committed
// just before an outage and returns after its first failure), and is
// ignored.
func (t *transitions) storeWorks(begun time.Time) {
	t.storeMu.Lock()
	defer t.storeMu.Unlock()
	if !t.storeDown || begun.Before(t.storeTurned) {
		return
	}
	t.storeDown, t.storeTurned = false, time.Now()
	t.log.Warn("task store available again", zap.String("store", config.StoreID))
}

// storeFailing reports whether the task store failed and has not recorded
// anything since.
func (t *transitions) storeFailing() bool {
	t.storeMu.Lock()
	defer t.storeMu.Unlock()
	return t.storeDown
}

// auditFailed and auditRecovered log the audit log's failure and its
// recovery, which the writer tells once each (file.Config.OnFailure and
// OnRecovery).
func auditFailed(log *zap.Logger) func(path string, err error) {
	return func(path string, err error) {
		log.Error("audit log failing: writes are kept in its buffer and retried; tasks are refused once it is full",
			zap.String("provider", config.AuditID), zap.String("path", path), zap.String("error", lifecycle.Redact(err.Error())))
	}
}

func auditRecovered(log *zap.Logger) func(path string) {
	return func(path string) {
		log.Warn("audit log recovered: writes succeed again", zap.String("provider", config.AuditID), zap.String("path", path))
	}
}
