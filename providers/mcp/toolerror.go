package mcp

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// ErrToolError matches a [*ToolError] with errors.Is.
var ErrToolError = errors.New("mcp: the tool reported an error")

// maxToolErrorText bounds the text of a tool's result that a ToolError
// carries: enough for a reason, not a whole page of output in a log line.
const maxToolErrorText = 500

// ToolError is a tools/call whose result says "isError": true: the tool
// ran, or tried to, and failed, and said why in its result, which Call
// returns beside this error. A failure of the protocol itself (no such
// tool, bad params, as some servers answer them) is a *jsonrpc.Error
// instead.
type ToolError struct {
	Provider string // the client's id
	Tool     string // the tool's name
	// Message is the result's text content, joined by newlines, redacted
	// with lifecycle.Redact and cut to about 500 bytes.
	Message string
}

func (e *ToolError) Error() string {
	return fmt.Sprintf("mcp %q: tool %q failed: %s", e.Provider, e.Tool, e.Message)
}

// Is reports whether target is [ErrToolError].
func (e *ToolError) Is(target error) bool { return target == ErrToolError }

// toolError returns the ToolError that a tools/call's result means, or
// nil if the tool succeeded.
func toolError(provider string, params, result json.RawMessage) error {
	var res struct {
		IsError bool `json:"isError"`
		Content []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"content"`
	}
	if json.Unmarshal(result, &res) != nil || !res.IsError {
		return nil
	}
	var texts []string
	for _, c := range res.Content {
		if c.Type == "text" {
			texts = append(texts, c.Text)
		}
	}
	msg := strings.Join(texts, "\n")
	if msg == "" {
		msg = "(no text in its result)"
	}
	var call struct {
		Name string `json:"name"`
	}
	_ = json.Unmarshal(params, &call)
	// Redacted before it is cut: a cut can split a secret from what marks
	// it as one.
	return &ToolError{Provider: provider, Tool: call.Name, Message: truncate(lifecycle.Redact(msg), maxToolErrorText)}
}

// truncate cuts s to at most n bytes, at a rune's boundary, and marks the
// cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
