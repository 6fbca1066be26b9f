package lifecycle

import (
	"encoding/json"
	"time"
)

// StartReport is what became of each provider's Initialize: the start's
// counterpart of [StopReport], with the begin of each so that a start can
// be drawn on a timeline beside the stop that followed it.
type StartReport struct {
	// Began is when Start was called; zero before it was.
	Began time.Time
	// Duration runs from Began to the end of the last Initialize that has
	// ended, those [Registry.StartProvider] ran after Start returned
	// included.
	Duration time.Duration
	// Providers holds every registered provider that the start
	// initialized (Start, or StartProvider for a staged one), once its
	// Initialize has ended. One registered while the registry ran (by
	// Register, or staged and then StartProvider: a pool's instance) is not
	// part of the start.
	Providers map[string]Initialization
}

// Initialization is what happened to one provider's Initialize.
type Initialization struct {
	Began    time.Time
	Duration time.Duration // until it returned, or until the registry stopped waiting for it
	// Result is ok, error, panic, timeout (its own timeout ran out) or
	// abandoned (the caller's context ended first).
	Result Result
	Err    error // a *ProviderError when it did not succeed; nil otherwise
}

// End is when the Initialize ended: Began plus Duration.
func (i Initialization) End() time.Time { return i.Began.Add(i.Duration) }

// MarshalJSON encodes the initialization as an [Outcome] is encoded: its
// duration in milliseconds and its error as its (redacted) message.
func (i Initialization) MarshalJSON() ([]byte, error) {
	v := struct {
		Began      time.Time `json:"began"`
		DurationMS float64   `json:"duration_ms"`
		Result     Result    `json:"result"`
		Error      string    `json:"error,omitempty"`
	}{i.Began, float64(i.Duration.Microseconds()) / 1000, i.Result, ""}
	if i.Err != nil {
		v.Error = Redact(i.Err.Error())
	}
	return json.Marshal(v)
}

// StartReport returns the Initialize of every provider the start
// initialized that has ended, the failed ones included, with when each
// began. A provider unregistered since is not in it, nor one registered
// while the registry ran.
func (r *Registry) StartReport() StartReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := StartReport{Began: r.startBegan, Providers: make(map[string]Initialization)}
	for _, n := range r.order {
		if n.initBegan.IsZero() || n.joinedRunning {
			continue
		}
		i := Initialization{Began: n.initBegan, Duration: n.initTook, Result: initResult(n.initErr), Err: n.initErr}
		out.Providers[n.id] = i
		if d := i.End().Sub(r.startBegan); !r.startBegan.IsZero() && d > out.Duration {
			out.Duration = d
		}
	}
	return out
}
