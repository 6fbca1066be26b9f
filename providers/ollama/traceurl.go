package ollama

import (
	"net/http"
	"net/url"
	"path"
	"reflect"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// tracedURL sits under otelhttp's transport and renames the URL its span
// records (url.full): otelhttp drops a password but keeps the path and the
// query, where a token may be (?api_key=, a proxy's secret path), and
// spans must not carry what no log may. The span names the server by its
// scheme and host, the base URL's own path as "/…", then the API's path
// (/api/chat), without the query.
type tracedURL struct {
	next http.RoundTripper
	base *url.URL
}

func (t tracedURL) RoundTrip(r *http.Request) (*http.Response, error) {
	if span := trace.SpanFromContext(r.Context()); span.IsRecording() {
		span.SetAttributes(attribute.String("url.full", shownURL(t.base, r.URL)))
	}
	return t.next.RoundTrip(r)
}

// shownURL is u as a span shows it, base being the server's URL. The
// client joins the API's path to the base path cleaned (//a/../b/ is /b),
// so the cleaned base path is what is hidden.
func shownURL(base, u *url.URL) string {
	prefix := strings.TrimSuffix(path.Clean("/"+base.Path), "/")
	shown := u.Scheme + "://" + u.Host
	if prefix != "" {
		shown += "/…"
	}
	return shown + strings.TrimPrefix(u.Path, prefix)
}

// isNilPointer reports whether tp is a nil pointer in an interface, such
// as a nil *sdktrace.TracerProvider: no tracer, as nil is.
func isNilPointer(tp any) bool {
	v := reflect.ValueOf(tp)
	return v.Kind() == reflect.Pointer && v.IsNil()
}
