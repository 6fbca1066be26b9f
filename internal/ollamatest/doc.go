// Package ollamatest is a real HTTP server on loopback that speaks the
// Ollama REST API as the Ollama module's docs/api.md specifies it: the
// streamed and unstreamed generate and chat endpoints (newline-delimited
// JSON objects, the last with "done": true and the statistics), embed and
// the older embeddings, tags and version, and errors as {"error": "..."}
// with the status code. It decodes requests into its own types, not the
// client's, so that a disagreement between the client and the docs shows.
//
// Tests steer it (a delay between streamed tokens, requests that hang,
// failures) and read what it saw: requests by path, and the connections
// open on the server's side, counted from net/http's connection states.
package ollamatest
