// Package mcp is a client of a Model Context Protocol server that runs as
// a child process and speaks over its stdin and stdout: MCP's stdio
// transport, built on package process. It is a provider, with Initialize,
// Cleanup and HealthCheck, and a thin one: [Client.Call] and
// [Client.Notify] pass MCP's methods through as JSON, and the client keeps
// only what the protocol itself requires of it.
//
// # Lifecycle
//
// Initialize starts the server, sends initialize, checks the answer's
// protocol version, and sends notifications/initialized. Nothing else is
// sent before that: Call, Notify and HealthCheck's ping fail with
// [ErrNotInitialized] until it is done. initialize offers roots if
// [Config.Roots] names any, answering roots/list with them, and nothing
// else: the client has no model to sample and no user to ask, and refuses
// the requests that would need them. A
// failed Initialize leaves the child for Cleanup, as lifecycle's registry
// always calls it once Initialize has begun.
//
// # Versions
//
// The client asks for [LatestVersion], 2025-11-25, and accepts an answer
// naming any version of [SupportedVersions]: 2025-11-25, 2025-06-18,
// 2025-03-26 and 2024-11-05. What it uses of MCP (requests, notifications,
// cancellation, progress, ping, tool results) is the same in all four.
// Any other answer fails Initialize, naming the version asked for, the one
// answered and those spoken. 2025-03-26 allowed JSON-RPC batches, which
// this client neither sends nor reads; 2025-06-18 removed them again. The
// 2026-07-28 revision drops the initialize handshake altogether; it is not
// spoken here.
//
// # Request ids and cancellation
//
// The client numbers its requests itself, from 1, and picks each id with
// jsonrpc2.PickID, so that it knows the id to name when a caller's
// context ends first: Call then sends notifications/cancelled with that
// requestId and the context's cause as the reason, within a second of its
// own, and returns the context's error. It is best effort, as the
// specification says: the server may have answered already; an answer
// that comes after is dropped. initialize is never cancelled: the
// specification forbids it. One cost: sourcegraph/jsonrpc2 keeps a
// cancelled request, params and all, until its answer comes, and a server
// that honours the cancellation never answers, so each cancelled call is
// held until the connection ends.
//
// # Progress
//
// [Client.CallWithProgress] asks the server for a request's progress with
// a token of the client's own, and hands each notifications/progress that
// names it to the caller's function, in order, every one that came before
// the answer before it returns. The goroutine that reads the server's
// output never waits for a caller: a caller that falls more than a few
// hundred notifications behind misses the newest. [Client.Call] adds no
// token: a token asks the server for notifications, and a caller that
// gives none has nobody to give them to. Every notifications/progress is
// logged at debug level with its token.
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
// anything else at debug. Every line has the provider's id. Requests from
// the server (sampling/createMessage, roots/list, elicitation/create and
// any other) are refused with method not found (-32601) and logged as
// warnings, except ping, which is answered with {}, as the specification
// requires. All of it is handled on the goroutine that reads the server's
// output, in order, so a progress notification is logged before the answer
// it preceded is returned.
//
// # Shutdown
//
// Cleanup follows the stdio transport's shutdown: it closes the server's
// stdin and waits up to [Config.CloseWait] for it to exit, then SIGTERM,
// then SIGKILL after the grace period, all within the cleanup's context;
// see package process.
package mcp
