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
