package app

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gleitzeit/gleitzeit/app/config"
)

// maxTimeoutLen bounds a task's timeout as written: "1h30m0.5s" is 9 bytes.
const maxTimeoutLen = 32

// checkTask refuses, before anything is recorded, a task whose protocol,
// method or timeout is not what the service takes, and returns the task's
// deadline: task_timeout, or the shorter one the task asks for.
func checkTask(t Task, taskTimeout time.Duration) (time.Duration, error) {
	if t.Protocol == "" || t.Method == "" {
		return 0, fmt.Errorf("%w: protocol and method are required", errBadRequest)
	}
	// The rule every template's protocol was held to as the configuration
	// loaded: any protocol served can be named, and nothing else a client
	// sends in a name reaches the store.
	if !config.ValidName(t.Protocol) {
		return 0, fmt.Errorf("%w: protocol %s: %s", errBadRequest, quote(t.Protocol), config.NameRule)
	}
	if !config.ValidName(t.Method) {
		return 0, fmt.Errorf("%w: method %s: %s", errBadRequest, quote(t.Method), config.NameRule)
	}
	if t.Timeout == "" {
		return taskTimeout, nil
	}
	var d time.Duration
	err := errors.New("too long")
	if len(t.Timeout) <= maxTimeoutLen {
		d, err = time.ParseDuration(string(t.Timeout))
	}
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%w: timeout: want a positive number of seconds such as 5, or a duration such as \"5s\", got %s", errBadRequest, quote(string(t.Timeout)))
	}
	return min(taskTimeout, d), nil
}

// quotedLen bounds what an answer or a log line quotes of a client's
// input.
const quotedLen = 64

// quote is s for an error message: at most its first quotedLen bytes (never
// half a character), Go-quoted so that control characters, NUL and invalid
// UTF-8 are escaped, and "…" after the quote if s was longer. An answer
// then never echoes more than a bounded part of the request.
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

// maxAnswerError bounds an error message in an answer, and a task's error
// in the store: the messages that quote client input quote a bounded part
// of it, and this holds for the rest, such as a decoder's that names an
// unknown field, or a provider's that echoes its params.
const maxAnswerError = 1024

// boundText is s cut to at most maxAnswerError bytes (never half a
// character, "…" where it was cut), with NUL bytes and invalid UTF-8
// replaced: what the store keeps of a task's error, which PostgreSQL would
// refuse with them.
func boundText(s string) string {
	s = strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", "\uFFFD"), "\uFFFD")
	if len(s) <= maxAnswerError {
		return s
	}
	cut := maxAnswerError
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// taskIDPattern is every id newTaskID makes: 12 random bytes in lowercase
// hex. A lookup of anything else is answered "no such task" without asking
// the store, so that no byte a client puts in a path reaches a query.
var taskIDPattern = regexp.MustCompile(`^[0-9a-f]{24}$`)

// validTaskID reports whether id is one the service could have made.
func validTaskID(id string) bool { return taskIDPattern.MatchString(id) }
