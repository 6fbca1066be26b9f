// Package tracemeta carries a trace to a JSON-RPC peer the way MCP does:
// the W3C traceparent (and tracestate) of the caller's span in the
// request's params._meta. The MCP client puts it in every request; the
// service puts it in the calls to its JSON-RPC children, whose params are
// objects.
//
// A context without a valid span costs nothing: no allocation, params
// unchanged.
package tracemeta
