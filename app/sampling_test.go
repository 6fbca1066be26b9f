package app

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gleitzeit/gleitzeit/app/taskstore"
	"github.com/gleitzeit/gleitzeit/internal/mcptest"
	"github.com/gleitzeit/gleitzeit/internal/ollamatest"
	"github.com/gleitzeit/gleitzeit/internal/testkit"
)

// An mcp template with mcp.sampling declares sampling, and the reference
// server's sampling request is answered by a chat on the service's own
// llm/v1 pool (a server speaking the Ollama API), as a task of its own.
func TestAnMCPServersSamplingIsAnsweredByTheLLMPool(t *testing.T) {
	argv := mcptest.Everything(t)
	s := startWith(t, fmt.Sprintf(`  everything:
    kind: mcp
    critical: true
    process: {command: [%q, %q, %q], grace: 1s}
    mcp: {sampling: {model: llama3.2}}
    pool: {min: 1, max: 1, per_instance: 4}`, argv[0], argv[1], argv[2]), "")
	s.waitHealthy()

	prompt := "why is the sky blue?"
	var (
		code int
		rec  taskstore.Record
		msg  string
	)
	// The server adds its tools once the session is initialized.
	require.Eventually(t, func() bool {
		code, rec, msg = s.task("mcp/v1", "tools/call", map[string]any{"name": "trigger-sampling-request",
			"arguments": map[string]any{"prompt": prompt, "maxTokens": 64}})
		return code == 200
	}, testkit.Wait, 20*time.Millisecond, "the sampling tool never answered: %d %s", code, msg)
	out := string(rec.Output)
	// server-everything sends its prompt wrapped; the loopback Ollama
	// answers the last user message back.
	assert.Contains(t, out, strings.ReplaceAll(ollamatest.Reply("Resource trigger-sampling-request context: "+prompt), `"`, `\"`))
	assert.Contains(t, out, "endTurn")

	s.stop() // flushes the audit log
	var chats int
	for _, line := range auditLines(t, s.settings.AuditPath) {
		if strings.Contains(line, `"protocol":"llm/v1"`) && strings.Contains(line, `"method":"chat"`) && strings.Contains(line, `"status":"ok"`) {
			chats++
		}
	}
	assert.GreaterOrEqual(t, chats, 1, "the chat ran as a task of its own")
}
