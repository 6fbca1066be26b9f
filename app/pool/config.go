package pool

import (
	"fmt"
	"time"

	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// Policy says which exits of an instance's child are followed by a
// replacement.
type Policy int

const (
	// Never: a child that exits stays dead; health reports it unhealthy.
	Never Policy = iota
	// OnFailure: a child that exits with a non-zero status or is killed by
	// a signal is replaced; one that exits with status 0 is not.
	OnFailure
	// Always: every unexpected exit is replaced.
	Always
)

var policyNames = [...]string{"never", "on-failure", "always"}

func (p Policy) String() string {
	if p >= 0 && int(p) < len(policyNames) {
		return policyNames[p]
	}
	return fmt.Sprintf("Policy(%d)", int(p))
}

// ParsePolicy reads a policy's name: never, on-failure or always.
func ParsePolicy(s string) (Policy, error) {
	for i, name := range policyNames {
		if s == name {
			return Policy(i), nil
		}
	}
	return 0, fmt.Errorf("want never, on-failure or always, got %q", s)
}

// Restart is a template's supervision policy.
type Restart struct {
	Policy Policy
	// Backoff is the delay before the first restart; each further restart
	// within Window doubles it, up to MaxBackoff. Jitter takes up to half
	// of it off, so that instances that died together do not restart in
	// step.
	Backoff    time.Duration
	MaxBackoff time.Duration
	// More than MaxRestarts restarts within Window and the supervisor backs
	// off: each further failure doubles the delay from MaxBackoff, up to
	// CrashLoopMaxBackoff, until an instance has run for a whole Window.
	MaxRestarts         int
	Window              time.Duration
	CrashLoopMaxBackoff time.Duration
	// UnhealthyAfter: an instance that every health check has found
	// unhealthy for this long (a child that hangs but stays alive) is cut
	// off as dead, and replaced as one whose child exited is. Zero: never,
	// for a template without a child to replace.
	UnhealthyAfter time.Duration
}

// Sizing is a pool's size and queue: what a template's pool: says.
type Sizing struct {
	Min, Max    int
	PerInstance int     // tasks one instance takes at once
	ScaleUpAt   float64 // utilization at or above which the pool grows
	ScaleDownAt float64 // utilization at or below which, for Cooldown, it shrinks
	// Window is how long the tasks in flight are averaged over to give
	// the utilization that ScaleUpAt and ScaleDownAt judge; 0 judges the
	// instant. Tasks waiting grow the pool at once whatever it says.
	Window       time.Duration
	Cooldown     time.Duration
	Queue        int           // tasks that may wait when every instance is at PerInstance
	QueueTimeout time.Duration // how long one may wait
}

// Config is one template's pool.
type Config struct {
	Template string
	Protocol string
	// Sizing is nil for a template without pool:, whose instances are
	// added and removed by hand (the configuration's providers, the admin
	// API) and take any number of tasks at once, without a queue.
	Sizing  *Sizing
	Restart Restart
	// Register are the options each instance is registered with, such as
	// its timeout.
	Register []lifecycle.RegisterOption
}

// InstanceID names a pool's n-th instance: <template>-<n>.
func InstanceID(template string, n int) string { return fmt.Sprintf("%s-%d", template, n) }
