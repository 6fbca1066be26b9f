package fxmodule

import "fmt"

// assignWaits decides which stop hook waits for each cleanup that must end
// before fx stops a hooked component its provider was built from. Its own
// hook, usually; but if a provider that depends on it was built earlier
// (lifecycle.DependsOn on a provider built later), fx runs that one's hook
// later, and the cleanup cannot begin before it: the waiting moves to the
// hook fx runs last among them. That is only right if the hooked
// components were built before that provider too; otherwise fx would stop
// one of them before the cleanup can begin, and the start fails, saying
// so.
func (s *session) assignWaits(slots []*provider) error {
	order := make(map[*provider]int, len(slots))
	byID := make(map[string]*provider, len(slots))
	for i, sl := range slots {
		order[sl], byID[sl.id] = i, sl
	}
	first := make(map[int]int) // by hooked component: the first provider built from it
	for i := len(slots) - 1; i >= 0; i-- {
		for c := range slots[i].hooked {
			first[c] = i
		}
	}
	dependents := make(map[*provider][]*provider, len(slots))
	for _, sl := range slots {
		for _, id := range sl.allDeps {
			if d := byID[id]; d != nil {
				dependents[d] = append(dependents[d], sl)
			}
		}
	}
	for _, q := range slots {
		if !q.waits() {
			continue
		}
		// The hook fx runs last among q's and its dependents'.
		waiter := q
		seen := map[*provider]bool{q: true}
		stack := []*provider{q}
		for len(stack) > 0 {
			n := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if order[n] < order[waiter] {
				waiter = n
			}
			for _, d := range dependents[n] {
				if !seen[d] {
					seen[d] = true
					stack = append(stack, d)
				}
			}
		}
		if waiter != q {
			for c := range q.hooked {
				// A hooked component some provider up to the waiter was
				// built from was built, and so started, before the waiter.
				if first[c] > order[waiter] {
					return fmt.Errorf("fxmodule: provider %q depends on %q, which fx builds after it, from a component with hooks "+
						"built after %q: fx would stop that component before %q can be cleaned up; "+
						"let %s take %q's type as a parameter, so that fx builds %q first",
						waiter.id, q.id, waiter.id, q.id, waiter.d.where(), q.id, q.id)
				}
			}
		}
		waiter.waitFor = append(waiter.waitFor, q)
	}
	return nil
}
