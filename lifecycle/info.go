package lifecycle

import (
	"slices"
	"time"
)

// ProviderInfo is what the registry knows of one provider at one moment.
type ProviderInfo struct {
	ID        string
	State     string // "registered", "initializing", "ready", "failed", "cleaning" or "cleaned"
	DependsOn []string
	Timeout   time.Duration
	Leases    int      // outstanding
	Outcome   *Outcome // its cleanup's, once ended
}

// Providers describes every registered provider, in registration order.
func (r *Registry) Providers() []ProviderInfo {
	r.mu.RLock()
	nodes := r.sortedNodes()
	r.mu.RUnlock()
	out := make([]ProviderInfo, len(nodes))
	for i, n := range nodes {
		out[i] = n.info()
	}
	return out
}

func (n *node) info() ProviderInfo {
	n.mu.Lock()
	defer n.mu.Unlock()
	info := ProviderInfo{ID: n.id, DependsOn: slices.Clone(n.deps), Timeout: n.timeout, Leases: n.leases}
	switch n.state {
	case initPending:
		info.State = "registered"
	case initStarted:
		info.State = "initializing"
	case initDone:
		info.State = "ready"
	case initFailed:
		info.State = "failed"
	}
	if n.job != nil {
		info.State = "cleaning"
		if o, ended := n.job.outcome(); ended {
			info.State = "cleaned"
			info.Outcome = &o
		}
	}
	return info
}
