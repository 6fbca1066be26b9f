package lifecycle

import (
	"slices"
	"strconv"
	"time"
)

// ProviderState is where a provider is in its life, as [Registry.Providers]
// reports it. It only moves forward.
type ProviderState int

// The states of a provider.
const (
	StateRegistered   ProviderState = iota + 1 // registered; Initialize has not begun
	StateInitializing                          // its Initialize is running
	StateReady                                 // initialized: it may be leased
	StateFailed                                // its Initialize failed, panicked or timed out
	StateCleaning                              // its cleanup is claimed and has not ended
	StateCleaned                               // its cleanup has ended: Outcome says how
)

var stateNames = [...]string{"", "registered", "initializing", "ready", "failed", "cleaning", "cleaned"}

func (s ProviderState) String() string {
	if s > 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "ProviderState(" + strconv.Itoa(int(s)) + ")"
}

// MarshalText encodes the state as its name, for JSON views.
func (s ProviderState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// ProviderInfo is what the registry knows of one provider at one moment.
type ProviderInfo struct {
	ID        string
	State     ProviderState
	DependsOn []string
	Timeout   time.Duration // NoTimeout: the caller's context alone bounds it
	Leases    int           // outstanding
	Outcome   *Outcome      // its cleanup's, once ended
}

// Providers describes every registered provider, in registration order.
func (r *Registry) Providers() []ProviderInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]ProviderInfo, len(r.order))
	for i, n := range r.order {
		info := ProviderInfo{ID: n.id, State: n.state, DependsOn: slices.Clone(n.deps), Timeout: n.timeout, Leases: n.leases}
		if c := n.cleanup; c != nil {
			info.State = StateCleaning
			if c.done {
				info.State = StateCleaned
				o := c.latest()
				info.Outcome = &o
			}
		}
		out[i] = info
	}
	return out
}
