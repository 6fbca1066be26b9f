// Package config is the service's configuration: what it is written as
// ([File], and each template's [Template]), what Load makes of it
// ([Settings]), and every check it passes first. Package app runs what it
// says.
//
// # Sources
//
// [Load] reads four sources, each over the one before:
//
//  1. defaults.yaml, embedded in the binary: what `make run` starts with,
//     every key at its default, most with a comment on what it does.
//  2. The file given with -config, YAML or JSON. Its templates and
//     providers replace the defaults' rather than add to them, so that
//     what it names is what runs; an unknown field anywhere in it is an
//     error that names the field's path.
//  3. The environment: GLEITZEIT_ADDR, GLEITZEIT_STORE_DSN and the other
//     GLEITZEIT_* variables, each over one field of the file. An empty
//     variable counts as unset.
//  4. The flags: -addr, -data-dir, -task-timeout and the rest, each over a
//     field too. A flag given empty is an error, not unset.
//
// -ollama-url, or GLEITZEIT_OLLAMA_URL under it, is the exception: it sets
// the URL of the template named ollama, after the four are read, and is
// an error if there is no such template. -migrate is a flag only, and -h
// prints every flag and variable with its meaning, then Load returns
// flag.ErrHelp (the service exits 0).
//
// # Checks
//
// Load checks everything it can before package app builds anything with
// fx: a configuration that fails is one [Error] that names the field and
// the problem (config: shutdown.timeout: want a duration such as 30s, got
// "soon"), on which the service exits 2. Beyond each field's own form and
// range, it checks the fields against each other (a retention that
// outlasts a task, a drain delay and a cleanup reserve that fit in
// shutdown.timeout, a pool's queue timeout shorter than task_timeout,
// restart.unhealthy_after no shorter than health_interval), the ids
// (unique, none of [StoreID], [AuditID] or a pool's instances'), and the
// providers it describes: the task store and one provider of each
// template are built without being started, which checks the DSN, an
// Ollama URL, a command and its directory while acquiring nothing.
//
// # The README
//
// The repository's README documents the keys, under "The example
// service": "Configuration" the sources, the variables and the flags,
// task_token, a child's environment and the errors, with templates of
// each kind but mcp; "Pools, supervision and MCP" kind: mcp and every key
// of pool: and restart:, with its default and why; "Tasks, pools and
// endpoints" admin_addr, admin_token, the group commit
// (store.batch_size), the audit log's rotation (audit.max_bytes,
// audit.max_files) and store.heartbeat; "Shutdown" shutdown.timeout,
// drain_delay and cleanup_reserve, the exit codes, and store.max_conns for
// the Kubernetes overlays; "Running several replicas" a PostgreSQL
// store.dsn, store.retention and -migrate. defaults.yaml says what the
// keys the README leaves out do (health_interval, provider_timeout,
// log_level).
package config
