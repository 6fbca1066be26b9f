// Package app is the Gleitzeit service: an execution engine that runs
// tasks on providers, and an admin HTTP server, wired with fx. Main runs
// it as a Kubernetes pod needs: examples/service is a main that calls it.
//
// # Tasks
//
// A task is {protocol, method, params}. The engine runs it on a provider
// that serves the protocol (an Ollama provider serves llm/v1; a process
// provider serves the protocol its template names), choosing among those
// not unhealthy at the last health poll and with the fewest tasks in
// flight, under a registry lease so that no task runs on a provider being
// cleaned up, bounded by the task timeout. Every task and its outcome is
// recorded in the task store (SQLite by default) and appended to the audit
// log.
//
// # Pools
//
// Several providers can serve one protocol. The admin API adds one by
// instantiating a template named in the configuration (no URL or command
// line arrives over HTTP) and removes one by stopping new tasks reaching
// it, waiting for its leases and cleaning it up. Both need the configured
// bearer token, and answer 403 when none is configured.
//
// # Endpoints
//
//	GET    /healthz              alive
//	GET    /readyz               started, not stopping, critical providers healthy
//	GET    /v1/providers         state, dependencies, health, resources, last cleanup
//	POST   /v1/providers         {"id", "template"}            (bearer token)
//	DELETE /v1/providers/{id}                                  (bearer token)
//	POST   /v1/tasks             {"protocol", "method", "params", "timeout"}
//	GET    /v1/tasks/{id}
//	GET    /metrics              Prometheus
package app
