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
	// A URL's password, quoted as a parse error quotes it: up to the
	// first "@", spaces, "/" and "?" that should have been escaped
	// included (parse "http://u:s3 cr?t@host").
	{re: regexp.MustCompile(`("[A-Za-z][A-Za-z0-9+.-]*://[^"/?#@\s:]*):[^"@]*@`), repl: "${1}:" + redacted + "@"},
	// A URL's password: postgres://app:s3cret@db:5432/app; and the rest
	// of one holding an "@" that should have been escaped, as URL parsers
	// read it, up to the authority's last "@" (app:p@ss@db): never past a
	// "/", "?" or space, so a path or query that holds an "@" keeps its host.
	{re: regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://[^/?#@\s:"]*):[^@\s?#"]*@(?:[^@\s/?#"]*@)*`), repl: "${1}:" + redacted + "@"},
	// A user alone that a driver left with a password's tail when it took
	// the password out: postgres://app@s3cret@db.
	{re: regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://[^/?#@\s:"]+)@(?:[^@\s/?#"]*@)+`), repl: "${1}:" + redacted + "@"},
	// A user alone, how a token is given (https://t0ken@api.example); but
	// in a URL whose user names a role or an account (postgres://app@db,
	// ssh://git@host), which stays.
	{re: regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*)://([^/?#@\s:",;]+)@`), fn: func(m []string) string { return m[1] + "://" + userOnly(m[1], m[2]) + "@" }},
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

// userOnly redacts a URL's user information that has no password: a
// token, unless the scheme is one whose URLs name a role or an account
// there.
func userOnly(scheme, u string) string {
	if namingSchemes[strings.ToLower(scheme)] {
		return u
	}
	return redacted
}

// namingSchemes are the URL schemes whose user information, without a
// password, names a database role or an account rather than holding a
// token.
var namingSchemes = map[string]bool{"postgres": true, "postgresql": true, "mysql": true, "mariadb": true,
	"mongodb": true, "mongodb+srv": true, "sqlserver": true, "clickhouse": true, "redis": true, "rediss": true, "amqp": true, "amqps": true,
	"ssh": true, "sftp": true, "git+ssh": true}

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
