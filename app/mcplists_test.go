package app

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A server whose list never ends does not hold the task: a cursor given
// twice, or pages past the bound, is the server's fault, named.
func TestAListThatNeverEndsIsRefused(t *testing.T) {
	again := func(context.Context, json.RawMessage) (json.RawMessage, error) {
		return json.RawMessage(`{"tools": [{"name": "x"}], "nextCursor": "same"}`), nil
	}
	_, whole, err := wholeList(context.Background(), again, "tools/list", nil)
	assert.True(t, whole)
	require.ErrorContains(t, err, `the server gave cursor "same" twice`)

	calls := 0
	endless := func(context.Context, json.RawMessage) (json.RawMessage, error) {
		calls++
		return json.RawMessage(fmt.Sprintf(`{"prompts": [], "nextCursor": "%d"}`, calls)), nil
	}
	_, _, err = wholeList(context.Background(), endless, "prompts/list", json.RawMessage(`{}`))
	require.ErrorContains(t, err, "did not end within 1000 pages")
	assert.Equal(t, maxListPages, calls)

	_, whole, _ = wholeList(context.Background(), again, "tools/call", nil)
	assert.False(t, whole, "not a list")
	_, whole, _ = wholeList(context.Background(), again, "tools/list", json.RawMessage(`{"cursor": "c"}`))
	assert.False(t, whole, "the caller pages")
}
