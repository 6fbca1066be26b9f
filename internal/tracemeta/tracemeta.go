package tracemeta

import (
	"bytes"
	"context"
	"encoding/json"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// MetaKey is the params member that holds a request's metadata.
const MetaKey = "_meta"

// Inject returns meta with the traceparent and tracestate of ctx's span
// set, or meta itself if ctx holds no valid span. A nil meta is made;
// meta is not changed in place, as it may be the caller's own.
func Inject(ctx context.Context, meta map[string]any) map[string]any {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return meta
	}
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	out := make(map[string]any, len(meta)+len(carrier))
	for k, v := range meta {
		out[k] = v
	}
	for k, v := range carrier {
		out[k] = v
	}
	return out
}

// InjectJSON returns params, a JSON-RPC request's, with ctx's trace in its
// _meta. Params that are not an object (an array, nothing), or whose _meta
// is not an object, are returned as they are: there is no place for it
// that a peer would look in.
func InjectJSON(ctx context.Context, params json.RawMessage) json.RawMessage {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return params
	}
	trimmed := bytes.TrimSpace(params)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return params
	}
	var members map[string]json.RawMessage
	if json.Unmarshal(trimmed, &members) != nil {
		return params
	}
	var meta map[string]any // null leaves it nil
	if raw, ok := members[MetaKey]; ok && json.Unmarshal(raw, &meta) != nil {
		return params // not an object
	}
	b, err := json.Marshal(Inject(ctx, meta))
	if err != nil {
		return params
	}
	members[MetaKey] = b
	out, err := json.Marshal(members)
	if err != nil {
		return params
	}
	return out
}
