package lifecycle

import (
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"time"
)

// Result is what became of one provider's cleanup.
type Result int

// The results of a cleanup. A provider's Outcome has exactly one.
const (
	// ResultOK: the cleanup method returned nil within its deadline.
	ResultOK Result = iota + 1
	// ResultError: the cleanup method returned an error within its deadline.
	ResultError
	// ResultPanic: the cleanup method panicked; the panic was recovered.
	ResultPanic
	// ResultTimeout: the provider's own timeout ran out before its cleanup
	// ended. The registry stopped waiting for it.
	ResultTimeout
	// ResultSkipped: there was nothing to clean up: the provider has no
	// cleanup method, or its Initialize never began. Not an error; the
	// Outcome's Reason says which.
	ResultSkipped
	// ResultAbandoned: the stop context was done before the cleanup ended,
	// or before it began.
	ResultAbandoned
)

var resultNames = [...]string{"", "ok", "error", "panic", "timeout", "skipped", "abandoned"}

func (r Result) String() string {
	if r > 0 && int(r) < len(resultNames) {
		return resultNames[r]
	}
	return "Result(" + strconv.Itoa(int(r)) + ")"
}

// MarshalText encodes the result as its name, for JSON reports.
func (r Result) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText decodes a result's name.
func (r *Result) UnmarshalText(text []byte) error {
	for i, name := range resultNames {
		if i > 0 && name == string(text) {
			*r = Result(i)
			return nil
		}
	}
	return errors.New("unknown cleanup result " + strconv.Quote(string(text)))
}

// Failed reports whether the result counts as a failure: an error, a panic,
// a timeout or an abandoned cleanup.
func (r Result) Failed() bool {
	return r == ResultError || r == ResultPanic || r == ResultTimeout || r == ResultAbandoned
}

// The reasons a cleanup is skipped, in [Outcome.Reason].
const (
	// ReasonNoMethod: the provider has none of the cleanup methods.
	ReasonNoMethod = "no cleanup method"
	// ReasonNotInitialized: the provider's Initialize never began (Start
	// never ran, or failed or was stopped before reaching it), so it holds
	// nothing to clean up: as in fx, where OnStop follows OnStart.
	ReasonNotInitialized = "never initialized"
)

// Outcome is what happened to one provider's cleanup.
type Outcome struct {
	Method   string // "Cleanup", "Shutdown" or "Close"; "" when it has none
	Result   Result
	Duration time.Duration // from the cleanup's start (its waits for Initialize and leases included) to its end
	// Began is when the cleanup began: zero for one that never began
	// (skipped as never initialized, or abandoned before it began). With
	// Duration it places the cleanup on a timeline; see End.
	Began  time.Time
	Err    error  // a *ProviderError when Result.Failed(); nil otherwise
	Reason string // why it was skipped: ReasonNoMethod or ReasonNotInitialized
	// Late: Stop's context was done before the cleanup ended (the outcome
	// was abandoned), and the method returned afterwards: Result, Duration
	// and Err are what it finally returned.
	Late bool
}

// End is when the cleanup ended, or when the registry stopped waiting for
// it (timeout, abandoned), or, Late, when its method finally returned:
// Began plus Duration. It is zero when Began is.
func (o Outcome) End() time.Time {
	if o.Began.IsZero() {
		return time.Time{}
	}
	return o.Began.Add(o.Duration)
}

// outcomeJSON is an Outcome as admin APIs and logs show it.
type outcomeJSON struct {
	Method     string     `json:"method"`
	Result     Result     `json:"result"`
	DurationMS float64    `json:"duration_ms"`
	Began      *time.Time `json:"began,omitempty"`
	Error      string     `json:"error,omitempty"`
	Reason     string     `json:"reason,omitempty"`
	Late       bool       `json:"late,omitempty"`
}

// MarshalJSON encodes the outcome for admin APIs and logs: its duration in
// milliseconds, when it began (RFC 3339, left out if it never did), and
// its error as its (redacted) message.
func (o Outcome) MarshalJSON() ([]byte, error) {
	v := outcomeJSON{Method: o.Method, Result: o.Result, DurationMS: float64(o.Duration.Microseconds()) / 1000,
		Reason: o.Reason, Late: o.Late}
	if !o.Began.IsZero() {
		v.Began = &o.Began
	}
	if o.Err != nil {
		v.Error = Redact(o.Err.Error())
	}
	return json.Marshal(v)
}

// UnmarshalJSON decodes what MarshalJSON encodes; the error comes back as
// its message alone.
func (o *Outcome) UnmarshalJSON(b []byte) error {
	var v outcomeJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*o = Outcome{Method: v.Method, Result: v.Result, Duration: time.Duration(v.DurationMS * float64(time.Millisecond)),
		Reason: v.Reason, Late: v.Late}
	if v.Began != nil {
		o.Began = *v.Began
	}
	if v.Error != "" {
		o.Err = errors.New(v.Error)
	}
	return nil
}

// StopReport is the per-provider outcome of a stop: every provider the
// registry held when Stop began, and every provider a failed Start cleaned
// up before it.
type StopReport struct {
	Duration  time.Duration
	Providers map[string]Outcome // by provider id
}

// IDs returns the ids of the providers in the report, sorted, for printing
// it in an order that reads the same every time.
func (r StopReport) IDs() []string {
	ids := make([]string, 0, len(r.Providers))
	for id := range r.Providers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Count returns how many providers had the given result.
func (r StopReport) Count(res Result) int {
	n := 0
	for _, o := range r.Providers {
		if o.Result == res {
			n++
		}
	}
	return n
}

// HealthReport is the health of every registered provider at one moment.
type HealthReport struct {
	// Status is the worst status of any provider: unhealthy, then degraded,
	// then unknown, then healthy. A registry with no providers is healthy.
	Status    Status
	Providers map[string]Health // by provider id
}
