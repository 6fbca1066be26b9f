package mcp

import (
	"slices"
	"strings"
)

// LatestVersion is the newest MCP revision this client speaks, and the one
// it asks for.
const LatestVersion = "2025-11-25"

// versions are the revisions this client speaks, newest first. The
// reference server pinned for the tests (server-everything 2026.8.31, on
// the TypeScript SDK 1.32.2) speaks these and the pre-release 2024-10-07,
// which no specification names. 2026-07-28 is not here: it has no
// initialize handshake at all.
var versions = []string{LatestVersion, "2025-06-18", "2025-03-26", "2024-11-05"}

// SupportedVersions returns the MCP revisions this client speaks, newest
// first.
func SupportedVersions() []string { return slices.Clone(versions) }

func supported(v string) bool { return slices.Contains(versions, v) }

func versionList() string { return strings.Join(versions, ", ") }
