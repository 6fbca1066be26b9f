// Package app is the Gleitzeit service: the wiring, the execution engine
// that runs tasks on providers, and the HTTP surface that takes the tasks
// and serves the probes, the admin API and the metrics. Main runs it as a
// Kubernetes pod needs (examples/service is a main that calls it); Options
// wires it with fx: the registry, the task store and the audit log as
// providers, the engine and the HTTP server.
//
// Its parts that stand on their own are packages of their own:
// app/config reads and checks the configuration, all of it before fx
// builds anything (exit 2); app/taskstore keeps the tasks and their
// outcomes; app/pool admits tasks to a template's instances, sizes them
// and supervises their children.
//
// # Tasks
//
// A task is {protocol, method, params}. The engine runs it on a provider
// that serves the protocol (an Ollama provider serves llm/v1; a process
// provider serves the protocol its template names), choosing among those
// not unhealthy at the last health poll and with the fewest tasks in
// flight, under a registry lease so that no task runs on a provider being
// cleaned up, bounded by the task timeout. Every task and its outcome is
// recorded in the task store (SQLite by default; package app/taskstore) and
// appended to the audit log; the records of concurrent tasks commit
// together, each task answered only once the transaction holding its record
// committed.
//
// # Pools
//
// Every template's instances are a pool (package app/pool), through which
// tasks are admitted. A template with pool: sizes itself between min and
// max on utilization, queues what its instances cannot take yet (429 when
// the queue is full, 503 when a wait runs out, both with Retry-After), and
// names its own instances. For a template without it, the admin API adds
// an instance by instantiating the template (no URL or command line
// arrives over HTTP) and removes one by stopping new tasks reaching it,
// waiting for its leases and cleaning it up; both need the configured
// bearer token, and answer 403 when none is configured. Children of
// process and mcp templates are supervised: one that dies is replaced
// under its id, after a backoff; past a restart budget the supervisor
// waits longer, but never gives up. One that hangs (unhealthy at every
// health poll for restart.unhealthy_after) is cut off and replaced the
// same way; one that dies while it runs tasks, a request's doing, is
// restarted at the ordinary pace, never the budget's longer waits. A
// template that is not critical is started once the registry has, so that
// one whose child cannot start is supervised rather than failing the
// service's start.
//
// # Endpoints
//
//	GET    /healthz              alive
//	GET    /readyz               started, not stopping, critical providers healthy
//	GET    /v1/providers         state, dependencies, health, resources, last cleanup
//	POST   /v1/providers         {"id", "template"}            (bearer token)
//	DELETE /v1/providers/{id}                                  (bearer token)
//	GET    /v1/pools             size, queue, restarts, last scale event
//	POST   /v1/tasks             {"protocol", "method", "params", "timeout"}
//	                             (Accept: text/event-stream: progress events, then the result)
//	GET    /v1/tasks/{id}
//	DELETE /v1/tasks/{id}        cancels a task this replica runs
//	GET    /metrics              Prometheus
//
// With admin_addr set, /v1/providers, /v1/pools and /metrics are served on
// that listener only, and addr answers 404 for them: a NetworkPolicy
// admits ports, not paths.
package app
