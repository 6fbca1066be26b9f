package config

import (
	"fmt"
	"regexp"
	"strconv"
	"unicode/utf8"
)

// idPattern is what a provider's id is made of.
var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// ValidID reports whether id can name a provider: lowercase letters,
// digits, '.', '_' or '-', at most 63 of them. The configuration's
// instances and a pool's are held to it as it loads; package app holds an
// instance added through the admin API to it too.
func ValidID(id string) bool { return idPattern.MatchString(id) }

// MaxNameLen bounds a protocol's and a method's name: both are
// identifiers, which the task store and the audit log keep with every
// task, so a client cannot make a record, or an answer, grow with what it
// sends. The longest served today is MCP's
// "notifications/resources/list_changed" (36 bytes).
const MaxNameLen = 64

// namePattern is what a protocol and a method are made of: ASCII letters,
// digits and . _ - / :, beginning with a letter or digit. It fits every
// name served today: llm/v1 and mcp/v1, the process templates' own
// (python/v1), and methods such as generate, tools/call and
// notifications/initialized. Nothing else a client sends reaches the store:
// no NUL, no invalid UTF-8, no control character, which PostgreSQL refuses
// and a log line would carry.
var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/:-]*$`)

// ValidName reports whether s can name a protocol or a method. One rule
// for both sides of a protocol: a template's is held to it as the
// configuration loads, so that a task can name it, and package app holds
// each task's protocol and method to it before anything is recorded.
func ValidName(s string) bool {
	return len(s) <= MaxNameLen && namePattern.MatchString(s)
}

// NameRule says what ValidName wants, for the errors that refuse a name.
var NameRule = fmt.Sprintf("want 1 to %d ASCII letters, digits, '.', '_', '-', '/' or ':', beginning with a letter or digit", MaxNameLen)

// quotedLen bounds what an error quotes of a value.
const quotedLen = 64

// quote is s for an error message, as package app quotes a client's input:
// at most its first quotedLen bytes (never half a character), Go-quoted so
// that control characters, NUL and invalid UTF-8 are escaped, and "…" after
// the quote if s was longer. A value from the environment or a flag can be
// anything, and the error is one line of the log.
func quote(s string) string {
	if len(s) <= quotedLen {
		return strconv.Quote(s)
	}
	cut := quotedLen
	for cut > quotedLen-utf8.UTFMax && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "…"
}
