// Package mcp is a client of a Model Context Protocol server, built on the
// official Go SDK (github.com/modelcontextprotocol/go-sdk), which speaks
// the protocol: the handshake, requests and their cancellation, progress,
// the server's own requests. The server is a child process spoken to over
// its stdin and stdout (MCP's stdio transport), or a server already
// running, spoken to over MCP's Streamable HTTP transport ([Remote]). What
// the SDK does not do is this package's: a child in a process group of its
// own, with an allow-listed environment and its stderr logged, shut down
// within a deadline (package process); a provider, with Initialize,
// Cleanup and HealthCheck, that a pool can supervise and replace.
// [Client.Call] passes MCP's requests through as JSON.
//
// # Lifecycle
//
// Initialize starts the server (or reaches it), sends initialize, checks
// the answer's protocol version, and sends notifications/initialized.
// Nothing else is sent before that: Call and HealthCheck's ping fail with
// [ErrNotInitialized] until it is done. initialize offers roots if
// [Config.Roots] names any, and sampling if it has a [Config.Sampler],
// and nothing else: the client has no user to ask, and the requests that
// would need one are refused. A failed Initialize leaves what it holds for Cleanup, as
// lifecycle's registry always calls it once Initialize has begun.
//
// A remote session that ends by itself (the server went away, or forgot
// the session) is not resumed: calls fail with [ErrSessionEnded],
// HealthCheck says why, and [Remote.OnEnd] is told, so that whoever
// supervises the provider replaces it, backing off, as it replaces a child
// that exited.
//
// # Versions
//
// The client asks for [LatestVersion], 2025-11-25, and accepts an answer
// naming any version of [SupportedVersions]: 2025-11-25, 2025-06-18,
// 2025-03-26 and 2024-11-05. Any other answer fails Initialize, naming the
// version asked for, the one answered and those spoken. The 2026-07-28
// revision, which drops the initialize handshake, is not spoken here.
//
// # Cancellation
//
// A call whose context ends first returns the context's error at once; the
// SDK sends notifications/cancelled, naming the request, off the caller's
// way back. It is best effort, as the specification says: the server may
// have answered already; an answer that comes after is dropped.
// initialize is never cancelled: the specification forbids it.
//
// # Progress
//
// [Client.CallWithProgress] asks the server for a request's progress with
// a token of the client's own, and hands each notifications/progress that
// names it to the caller's function, in order. [Client.Call] adds no
// token: a token asks the server for notifications, and a caller that
// gives none has nobody to give them to. The SDK handles the server's
// notifications on a goroutine of its own, in order, but not in order with
// the answers to calls: a notification that came just before an answer
// may be handled after the call has returned.
//
// # Tool errors
//
// A tools/call whose result says "isError": true is a tool that failed,
// not a failed call: Call returns the result, for whoever wants its
// content, and a [*ToolError] that carries its text, so that the failure
// is not taken for a success by a caller who looks only at the error.
//
// # What the server sends
//
// notifications/message, the server's log, is logged at the level it
// names (notice and warning as warn, error and above as error);
// notifications/progress at debug; the list_changed notifications at info;
// any other at debug. Every line has the provider's id. The server's
// requests are answered by the SDK: ping with {}, as the specification
// requires, roots/list with the roots and sampling/createMessage with the
// Sampler's answer, each only if there is one; the others
// (elicitation/create, and those two without) are refused with an error
// and logged as warnings.
//
// # Shutdown
//
// Cleanup follows the stdio transport's shutdown: it closes the server's
// stdin and waits up to [Config.CloseWait] for it to exit, then SIGTERM,
// then SIGKILL after the grace period, all within the cleanup's context;
// see package process. A remote session is closed, which tells the server
// (an HTTP DELETE of the session), within the cleanup's context.
package mcp
