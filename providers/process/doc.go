// Package process provides a child process that speaks JSON-RPC 2.0 over
// its stdin and stdout, one JSON object per line: the transport that MCP
// servers use. The child runs in a process group of its own, so that
// cleanup reaches whatever it starts.
//
// # Cleanup
//
// Cleanup fails the calls in flight, closes the child's stdin and stdout,
// signals SIGTERM to the group, waits for the grace period (shortened to
// fit the cleanup's deadline), then sends SIGKILL to the group and reaps
// it. A child that had to be killed is reported with [ErrKilled].
//
// With [Config.CloseWait], Cleanup begins as MCP's stdio transport asks: it
// closes the child's stdin alone, so that the child sees the end of its
// input, and keeps reading its output while it waits for the child to
// exit by itself; only then does the sequence above follow, for whatever
// is left. [Config.OnExit] is told how the child ended, whether Cleanup
// asked for it or not.
//
// # Traffic from the child
//
// The connection is symmetric: the child may send requests and
// notifications of its own. [Config.Handler] handles them; without one,
// requests are refused with method not found and notifications dropped.
// [Process.Notify] sends notifications the other way, and [Process.Call]
// takes jsonrpc2's call options, so a caller can pick a request's id and
// name it later, to cancel it.
//
// # A protocol of the caller's own
//
// With [Config.OwnStdio], Initialize starts the child and makes no JSON-RPC
// connection: [Process.Stdio] hands its stdout and stdin to the caller,
// which speaks over them (package mcp gives them to the MCP SDK), reports
// its calls with [Process.Begin] and output it cannot read with
// [Process.OutputBroken]. The process group, the environment, stderr,
// Cleanup and OnExit are as for a JSON-RPC child.
//
// # Grandchildren and zombies
//
// Processes the child starts stay in its group and are signalled with it,
// unless they leave it (setsid, setpgid), which no signal to the group can
// follow; that is what cgroups are for. A grandchild whose parent dies is
// handed to the nearest subreaper, or to PID 1, which must reap it. A
// service that runs as PID 1 in a container, or that starts trees of
// processes, should call [BecomeSubreaper] once at startup: orphans of the
// group are then handed to it, and Cleanup reaps them.
package process
