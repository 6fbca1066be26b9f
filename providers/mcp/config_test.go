package mcp_test

import (
	"testing"
	"time"

	"github.com/sourcegraph/jsonrpc2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gleitzeit/gleitzeit/providers/mcp"
	"github.com/gleitzeit/gleitzeit/providers/process"
)

// processID is a process.Config that names the provider.
func processID(id string) process.Config { return process.Config{ID: id} }

// What the client owns, a caller may not set.
func TestNewRefusesWhatTheClientOwns(t *testing.T) {
	command := []string{"true"}
	tests := []struct {
		name string
		give mcp.Config
		want string
	}{
		{"ready method", mcp.Config{Process: process.Config{Command: command, ReadyMethod: "x"}}, "ReadyMethod is set"},
		{"health method", mcp.Config{Process: process.Config{Command: command, HealthMethod: "x"}}, "HealthMethod is set"},
		{"handler", mcp.Config{Process: process.Config{Command: command, Handler: jsonrpc2.HandlerWithError(nil)}}, "Handler is set"},
		{"process close wait", mcp.Config{Process: process.Config{Command: command, CloseWait: time.Second}}, "use Config.CloseWait"},
		{"negative close wait", mcp.Config{Process: process.Config{Command: command}, CloseWait: -time.Second}, "CloseWait is negative"},
		{"no command", mcp.Config{}, "mcp: process: Config.Command is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := mcp.New(tt.give)
			require.ErrorContains(t, err, tt.want)
		})
	}
}

func TestNewDefaults(t *testing.T) {
	c, err := mcp.New(mcp.Config{Process: process.Config{Command: []string{"true"}}})
	require.NoError(t, err)
	assert.Equal(t, "mcp", c.ID())
	assert.Equal(t, "mcp", c.Protocol())
	_, ok := c.Session()
	assert.False(t, ok)

	c, err = mcp.New(mcp.Config{Process: process.Config{ID: "files", Protocol: "mcp/files", Command: []string{"true"}}})
	require.NoError(t, err)
	assert.Equal(t, "files", c.ID())
	assert.Equal(t, "mcp/files", c.Protocol())
}

func TestSupportedVersions(t *testing.T) {
	got := mcp.SupportedVersions()
	assert.Equal(t, mcp.LatestVersion, got[0], "the newest first")
	got[0] = "changed"
	assert.Equal(t, mcp.LatestVersion, mcp.SupportedVersions()[0], "a copy")
}
