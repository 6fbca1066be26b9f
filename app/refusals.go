package app

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gleitzeit/gleitzeit/app/pool"
	"github.com/gleitzeit/gleitzeit/app/taskstore"
	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// errAuditUnavailable: the audit log could not take a task's record (its
// buffer full of records it cannot write), so the service refuses the
// task, or cannot vouch for its outcome, as when the store fails.
var errAuditUnavailable = errors.New("the audit log is unavailable")

// Why a task was refused: the values of gleitzeit_tasks_refused_total's
// reason label. A fixed set, never a value the client chose, so that no
// client can grow the metrics.
const (
	refusedStoreUnavailable = "store_unavailable" // the task store could not record it
	refusedAuditUnavailable = "audit_unavailable" // the audit log could not take its record
	refusedShuttingDown     = "shutting_down"     // the service is starting or stopping
	refusedNoProvider       = "no_provider"       // no healthy instance of its protocol
	refusedQueueFull        = "queue_full"        // 429: its pool's queue was full
	refusedQueueTimeout     = "queue_timeout"     // its wait in the pool's queue ran out
	refusedBadRequest       = "bad_request"       // a body or field the service cannot take
	refusedUnknownProtocol  = "unknown_protocol"  // no template serves its protocol
	refusedUnauthorized     = "unauthorized"      // the task token was missing or wrong
	refusedOther            = "other"             // refused for a reason not above
)

var refusalReasons = []string{refusedStoreUnavailable, refusedAuditUnavailable, refusedShuttingDown, refusedNoProvider,
	refusedQueueFull, refusedQueueTimeout, refusedBadRequest, refusedUnknownProtocol, refusedUnauthorized, refusedOther}

// newRefusals registers the counter of refused tasks, each reason's series
// at 0 from the start: a rate over a series that appears with its first
// refusal misses that one.
func newRefusals(reg *prometheus.Registry) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gleitzeit_tasks_refused_total",
		Help: "Tasks refused without running, by reason (store_unavailable, audit_unavailable, shutting_down, no_provider, queue_full, queue_timeout, bad_request, unknown_protocol, unauthorized, other).",
	}, []string{"reason"})
	for _, r := range refusalReasons {
		c.WithLabelValues(r)
	}
	reg.MustRegister(c)
	return c
}

// refuse counts a refused task, if reason is not "".
func (m *Metrics) refuse(reason string) {
	if reason != "" {
		m.refused.WithLabelValues(reason).Inc()
	}
}

// refusal says why Run refused a task, or "" if it did not: the task ran
// (whatever its outcome), or was cut short while it ran.
func refusal(rec taskstore.Record, err error) string {
	if err == nil || rec.ID != "" && rec.Status != "rejected" {
		return ""
	}
	switch {
	case errors.Is(err, errBadRequest):
		return refusedBadRequest
	case errors.Is(err, errNoProtocol):
		return refusedUnknownProtocol
	case errors.Is(err, errAuditUnavailable):
		return refusedAuditUnavailable
	case errors.Is(err, errStoreUnavailable):
		return refusedStoreUnavailable
	case errors.Is(err, pool.ErrQueueFull):
		return refusedQueueFull
	case errors.Is(err, pool.ErrQueueTimeout):
		return refusedQueueTimeout
	case errors.Is(err, errShuttingDown), errors.Is(err, pool.ErrClosed), errors.Is(err, lifecycle.ErrStopped):
		return refusedShuttingDown
	case errors.Is(err, errNoProvider), errors.Is(err, pool.ErrNoInstance):
		return refusedNoProvider
	}
	return refusedOther
}
