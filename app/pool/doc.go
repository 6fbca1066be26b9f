// Package pool runs the instances of one provider template: it admits
// tasks to them, queues what they cannot take yet, grows and shrinks their
// number with the load, and replaces those whose child process dies. The
// registry ([lifecycle.Registry]) still owns every instance's life: the
// pool registers each one, starts it, and removes it through the registry,
// so that every cleanup runs once, bounded, and is reported.
//
// # Admission
//
// A task takes a [Lease] on the least busy instance that is ready, usable
// (healthy at the last look) and below PerInstance tasks. When every one is
// at PerInstance, the task waits in a FIFO queue for at most
// QueueTimeout: a full queue is [ErrQueueFull], a wait that runs out
// [ErrQueueTimeout]. The queue holds Queue tasks, and what the instances on
// their way will take (starting, due to restart, or places below Max the
// scaler may still fill), so that a burst of Max × PerInstance + Queue is
// never refused while the pool grows. Whoever releases a lease hands the instance to the
// first waiter directly, so a queue is served in order and no waiter is
// overtaken by a task that arrives later. Each lease holds a registry
// lease too, so an instance's cleanup waits for the tasks running on it.
//
// # Scaling
//
// Utilization is the tasks in flight, averaged over Window (each count
// weighted by how long it held), over the ready instances times
// PerInstance: one task at a time fills its instance while it runs, but
// not a window with pauses in it. At or above ScaleUpAt, or with tasks
// waiting (at once, whatever the window says), the pool starts
// as many instances as the tasks in flight and waiting need, up to Max, at
// once: a burst should not wait one start per tick. At or below ScaleDownAt
// for a whole Cooldown, it removes idle instances down to what the load
// needs, never below Min, and waits another Cooldown before shrinking
// again. Only an idle instance is chosen, and it is marked draining under
// the same lock that admits tasks, so no task can reach it afterwards:
// no task fails because the pool shrank. A start that fails holds further
// growth back for the restart backoff, so a template that cannot start does
// not spin.
//
// # Supervision
//
// An instance whose child exits when nobody asked it to is logged at warn
// (pid, exit status or signal, the last line of its stderr); the tasks
// running on it fail with that reason. What follows is the template's
// [Restart] policy: never, on failure (a non-zero status or a signal), or
// always. A replacement, under the same id, is started after an
// exponential backoff with jitter, once the dead instance has been removed
// from the registry: its cleanup runs exactly once and is reported to
// [Deps.Removed]. More than MaxRestarts restarts within Window and the
// supervisor backs off, but never gives up: each further failure doubles
// the wait, from MaxBackoff up to CrashLoopMaxBackoff, as Kubernetes does
// with a pod in CrashLoopBackOff. It logs the moment it begins to back off
// and the moment an instance starts again, which ends that state;
// [Pool.BackingOff] says why meanwhile, and [Stats] when the next restart
// is due. The waits go back to the quick pace once an instance has run for
// a whole Window. A restart due while it backs off keeps no task waiting.
//
// A child that dies while it serves (it had become ready, and had tasks in
// flight when it died or was cut off) died of what a request sent, not of
// a crash loop: it is restarted at the ordinary pace, Backoff doubling up
// to MaxBackoff, however often, and counts neither against the budget nor
// towards the long waits, which are for children that fail to start or
// die while idle. Otherwise a client could hold a template in them by
// killing its child each time it comes back.
//
// A child can hang and stay alive. An instance that every health check
// has found unhealthy for UnhealthyAfter (the service tells the pool of
// each check: [Pool.Checked]) is cut off as dead, as one whose output
// broke is, with a reason that says so: what follows is the restart
// policy, and its removal ends the child. A check that finds it anything
// else, degraded (busy) included, begins the count anew.
// [Pool.Launch] starts an instance that way from the outset: one that
// cannot start is left to the supervisor rather than failing the caller.
//
// # Ownership
//
// Every goroutine the pool starts (the scaler, starts, removals, restarts)
// ends when [Pool.Close] cancels it, and Close waits for them. A removal or
// start cut short that way is finished by the registry, whose Stop waits
// for it.
package pool
