// Package mcptest gives the MCP client's tests two servers to talk to over
// stdio: the real one, and a strict one of our own.
//
// # The real server
//
// [Everything] runs @modelcontextprotocol/server-everything, the MCP
// project's reference server, from this folder's node_modules: its
// version is pinned, exactly, in package.json and package-lock.json, and
// installed with
//
//	cd internal/mcptest && npm ci
//
// which .ci/run does. A test that needs it and finds node or the package
// missing fails, saying so and how to fix it: it is never skipped. The
// lock file records no download addresses (.npmrc beside it), so npm ci
// fetches from whatever registry npm is set up to use.
//
// # The strict server
//
// [Strict] re-executes the test binary as an MCP server of our own, as
// package rpctest does for plain JSON-RPC (a test package's TestMain
// calls [Serve] first). It is strict where the real server is lenient: it
// refuses, and records, any request or notification that comes before
// notifications/initialized, and checks what initialize offers. Its tools
// let a test steer it and read what it saw:
//
//   - echo {message}: answers message as text.
//   - fail {text}: answers text as a tool error ("isError": true).
//   - slow: answers only if no notifications/cancelled names it within a
//     minute; it records its request's id and the cancellations it gets.
//   - ask {method}: sends method to the client as a request and answers,
//     as text, the client's answer: {"result": ...} or {"error": ...}.
//   - notify {method, params}: sends a notification to the client, then
//     answers; the notification arrives first.
//   - seen: answers a [Seen] as structured content.
//   - garble: writes a line that is not JSON-RPC to its stdout, and never
//     answers.
//
// Seen's fields are the violations, the ids of slow calls, the ids that
// notifications/cancelled named, the client's other notifications, the
// initialize request's params, and the traceparent each tools/call
// carried in its params._meta.
package mcptest
