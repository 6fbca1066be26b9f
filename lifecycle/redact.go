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
	fn   func(match []string) string // instead of repl, if set
}{
	// A URL's user information, quoted as a parse error quotes it: up to
	// the quote's last "@", so that a password holding a space, a "/" or
	// a "?" that should have been escaped is hidden whole.
	{re: regexp.MustCompile(`"([A-Za-z][A-Za-z0-9+.-]*)://([^"]*)@`), fn: func(m []string) string { return `"` + m[1] + "://" + userinfo(m[1], m[2]) + "@" }},
	// A URL's user information: postgres://app:s3cret@db:5432/app,
	// https://t0ken@host. Up to the authority's last "@", as URL parsers
	// read it: a password holding an "@" that should have been escaped is
	// hidden whole, not cut at its first.
	{re: regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*)://([^/\s"]*)@`), fn: func(m []string) string { return m[1] + "://" + userinfo(m[1], m[2]) + "@" }},
	// A host name that took a password's tail, a resolver's error on a
	// DSN whose password held an "@": lookup s3cret@db: no such host.
	{re: regexp.MustCompile(`(lookup\s+)[^\s@]*@`), repl: "${1}" + redacted + "@"},
	// The Go MySQL driver's form: user:s3cret@tcp(db:3306)/app.
	{re: regexp.MustCompile(`([^\s:/@]+):[^@\s/]+@(tcp|unix)\(`), repl: "${1}:" + redacted + "@${2}("},
	// key=value pairs in libpq DSNs, query strings and flags, quoted or not:
	// password=s3cret, ?api_key=s3cret&, sslpassword='s 3'.
	// The name may follow anything but a letter: a space, a "?", or the
	// "%20" of a DSN that went through a URL's escaping.
	{re: regexp.MustCompile(`(?i)(^|[^a-z])((?:ssl)?passw(?:or)?d|pwd|pass|secret|client[_-]?secret|token|access[_-]?token|refresh[_-]?token|auth[_-]?token|api[_-]?key|apikey)(\s*=\s*)('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s&;,]+)`), repl: "${1}${2}${3}" + redacted},
	// The same names as JSON members: "password": "s3cret".
	{re: regexp.MustCompile(`(?i)("(?:passw(?:or)?d|secret|token|access_token|refresh_token|api_key|apikey|client_secret)"\s*:\s*)"(?:[^"\\]|\\.)*"`), repl: `${1}"` + redacted + `"`},
	// Credentials in an Authorization header or after the scheme's name.
	{re: regexp.MustCompile(`(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]{4,}`), repl: "${1}${2}" + redacted},
}

// userinfo redacts a URL's user information: the password, keeping the
// user's name; and a user alone too, unless the scheme is a database's,
// whose URLs name a role there (postgres://app@db/app). Elsewhere a user
// alone is how a token is given: https://t0ken@api.example.
func userinfo(scheme, u string) string {
	if name, _, ok := strings.Cut(u, ":"); ok {
		return name + ":" + redacted
	}
	if name, _, ok := strings.Cut(u, "@"); ok {
		// An "@" that should have been escaped: a driver that took the
		// password out left its tail behind (postgres://app@s3cret@db).
		return name + ":" + redacted
	}
	if databaseSchemes[strings.ToLower(scheme)] {
		return u
	}
	return redacted
}

// databaseSchemes are the URL schemes whose user information, without a
// password, names a database role rather than holding a token.
var databaseSchemes = map[string]bool{"postgres": true, "postgresql": true, "mysql": true, "mariadb": true,
	"mongodb": true, "mongodb+srv": true, "sqlserver": true, "clickhouse": true, "redis": true, "rediss": true, "amqp": true, "amqps": true}

// secretHints holds a lowercase fragment of each pattern; a string with
// none of them is returned as it is, without running any expression.
var secretHints = []string{"://", "lookup", "@tcp(", "@unix(", "pass", "pwd", "secret", "token", "key", "bearer", "basic"}

// Redact returns s with the secrets that connection strings carry replaced
// by "xxxxx": the password in a URL's user information (and a user alone,
// but in a database's URL, where it names a role: elsewhere it is how a
// token is given), key=value pairs such
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
		if p.fn == nil {
			s = p.re.ReplaceAllString(s, p.repl)
			continue
		}
		s = p.re.ReplaceAllStringFunc(s, func(match string) string { return p.fn(p.re.FindStringSubmatch(match)) })
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
