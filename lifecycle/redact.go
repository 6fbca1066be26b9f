package lifecycle

import (
	"regexp"
	"strings"
)

// redacted replaces every secret that Redact finds; it is the mask that
// net/url's URL.Redacted uses, so one secret reads the same everywhere.
const redacted = "xxxxx"

// secretPatterns find the places where connection strings carry secrets.
// Each keeps the name of what it hides so that a reader can still tell a
// password from a token.
var secretPatterns = []struct {
	re   *regexp.Regexp
	repl string
}{
	// The password in a URL's user information:
	// postgres://app:s3cret@db:5432/app. A password may hold a "/" that
	// should have been escaped; such a URL does not parse, and the parse
	// error quotes it whole.
	{regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://[^/?#@\s:]*):[^@\s?#]*@`), "${1}:" + redacted + "@"},
	// The Go MySQL driver's form: user:s3cret@tcp(db:3306)/app.
	{regexp.MustCompile(`([^\s:/@]+):[^@\s/]+@(tcp|unix)\(`), "${1}:" + redacted + "@${2}("},
	// key=value pairs in libpq DSNs, query strings and flags, quoted or not:
	// password=s3cret, ?api_key=s3cret&, sslpassword='s 3'.
	// The name may follow anything but a letter: a space, a "?", or the
	// "%20" of a DSN that went through a URL's escaping.
	{regexp.MustCompile(`(?i)(^|[^a-z])((?:ssl)?passw(?:or)?d|pwd|pass|secret|client[_-]?secret|token|access[_-]?token|refresh[_-]?token|auth[_-]?token|api[_-]?key|apikey)(\s*=\s*)('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s&;,]+)`), "${1}${2}${3}" + redacted},
	// The same names as JSON members: "password": "s3cret".
	{regexp.MustCompile(`(?i)("(?:passw(?:or)?d|secret|token|access_token|refresh_token|api_key|apikey|client_secret)"\s*:\s*)"(?:[^"\\]|\\.)*"`), `${1}"` + redacted + `"`},
	// Credentials in an Authorization header or after the scheme's name.
	{regexp.MustCompile(`(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]{4,}`), "${1}${2}" + redacted},
}

// secretHints holds a lowercase fragment of each pattern; a string with
// none of them is returned as it is, without running any expression.
var secretHints = []string{"://", "@tcp(", "@unix(", "pass", "pwd", "secret", "token", "key", "bearer", "basic"}

// Redact returns s with the secrets that connection strings carry replaced
// by "xxxxx": the password in a URL's user information, key=value pairs such
// as password=, token= and api_key= (in libpq DSNs, query strings and JSON),
// and bearer or basic credentials. The registry applies it to every error,
// health message and resource it reports; providers may use it for their
// own messages.
//
// Redact recognises forms, not values: a secret written where no such form
// marks it (a bare password as a positional argument, say) is not found.
// Providers should therefore never put a secret in an error outside a URL
// or a DSN.
func Redact(s string) string {
	if !mayHoldSecret(s) {
		return s
	}
	for _, p := range secretPatterns {
		s = p.re.ReplaceAllString(s, p.repl)
	}
	return s
}

func mayHoldSecret(s string) bool {
	lower := strings.ToLower(s)
	for _, h := range secretHints {
		if strings.Contains(lower, h) {
			return true
		}
	}
	return false
}

// RedactError returns err with its message redacted by [Redact]. It unwraps
// to err, so errors.Is and errors.As see through it. nil stays nil.
func RedactError(err error) error {
	if err == nil {
		return nil
	}
	return &redactedError{err}
}

type redactedError struct{ err error }

func (e *redactedError) Error() string { return Redact(e.err.Error()) }
func (e *redactedError) Unwrap() error { return e.err }
