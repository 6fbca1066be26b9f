package mcp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// remote checks and completes the config of a remote server.
func (c *Client) remote() error {
	r := c.cfg.Remote
	u, err := url.Parse(r.URL)
	switch {
	case err != nil:
		// url's error quotes the URL, secrets and all.
		return errors.New("mcp: Config.Remote.URL is not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("mcp: Config.Remote.URL: the scheme is %q, not http or https", u.Scheme)
	case u.Host == "":
		return errors.New("mcp: Config.Remote.URL has no host")
	}
	for name := range r.Header {
		if TransportHeader(name) {
			return fmt.Errorf("mcp: Config.Remote.Header: %s is the transport's own", http.CanonicalHeaderKey(name))
		}
	}
	if r.ID == "" {
		r.ID = "mcp"
	}
	if r.Protocol == "" {
		r.Protocol = "mcp"
	}
	hc := http.Client{Transport: defaultTransport()}
	if r.HTTPClient != nil {
		hc = *r.HTTPClient
	}
	// The endpoint is used as configured: a redirect would take the
	// headers, and the URL in Referer, to wherever it pointed.
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if len(r.Header) > 0 {
		base := hc.Transport
		if base == nil {
			base = http.DefaultTransport
		}
		hc.Transport = withHeader{base: base, header: r.Header.Clone(), scheme: u.Scheme, host: u.Host}
	}
	r.HTTPClient = &hc
	c.cfg.Remote = r
	c.id, c.protocol = r.ID, r.Protocol
	c.shown = shownURL(u)
	return nil
}

// TransportHeader reports whether name is a header that Streamable HTTP
// sets itself, which a configured header must not replace: the session,
// the protocol version, what the client accepts and sends, and HTTP's own;
// in any case, and with _ for - (which CGI servers take for the same).
func TransportHeader(name string) bool {
	switch http.CanonicalHeaderKey(strings.ReplaceAll(name, "_", "-")) {
	case "Accept", "Content-Type", "Content-Length", "Mcp-Session-Id", "Mcp-Protocol-Version", "Last-Event-Id",
		"Host", "Connection", "Transfer-Encoding", "Upgrade", "Te", "Trailer":
		return true
	}
	return false
}

// shownURL is how a remote server's URL appears in errors, health and
// logs: its scheme and host only, since its userinfo, path and query may
// each hold a secret (hosted servers put a token in the path).
func shownURL(u *url.URL) string {
	s := u.Scheme + "://" + u.Host
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		s += "/…"
	}
	return s
}

// scrubbed is an error whose message names the remote server by its
// shown URL, redacted; it unwraps to the error it was.
type scrubbed struct {
	msg string
	err error
}

func (e *scrubbed) Error() string { return e.msg }
func (e *scrubbed) Unwrap() error { return e.err }

// quotedURL is a URL as an error quotes it: net/http's errors put it in
// double quotes, others end it at a space.
var quotedURL = regexp.MustCompile(`https?://[^\s"'<>]+`)

// scrub is err with every URL it quotes (the server's, in any spelling,
// or another) cut to its scheme and host, and the rest redacted. Only a
// remote client's errors are scrubbed: a child has no URL.
func (c *Client) scrub(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if c.proc == nil {
		msg = quotedURL.ReplaceAllStringFunc(msg, func(raw string) string {
			u, err := url.Parse(raw)
			if err != nil || u.Host == "" {
				return "(a URL)"
			}
			return shownURL(u)
		})
	}
	return &scrubbed{msg: lifecycle.Redact(msg), err: err}
}

// defaultTransport bounds what a stream cannot: the connection, its TLS
// handshake, and the wait for an answer's headers. An answer that streams
// (server-sent events, the session's own stream) is not cut short: it
// lasts as long as its call, whose context bounds it.
func defaultTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 5 * time.Second
	t.ResponseHeaderTimeout = 30 * time.Second
	return t
}

// withHeader adds the configured headers to every request to the
// configured server, and to no other.
type withHeader struct {
	base         http.RoundTripper
	header       http.Header
	scheme, host string
}

// CloseIdleConnections closes the base transport's idle connections, so
// that http.Client.CloseIdleConnections reaches them through the header.
func (w withHeader) CloseIdleConnections() {
	if c, ok := w.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

func (w withHeader) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != w.scheme || req.URL.Host != w.host {
		return w.base.RoundTrip(req)
	}
	req = req.Clone(req.Context()) // a RoundTripper must not change its request
	for k, vs := range w.header {
		req.Header[k] = vs
	}
	return w.base.RoundTrip(req)
}

// transport is how the session reaches the server: the child's stdio, or
// Streamable HTTP.
func (c *Client) transport(ctx context.Context) (sdk.Transport, error) {
	if c.proc == nil {
		return &sdk.StreamableClientTransport{
			Endpoint:   c.cfg.Remote.URL,
			HTTPClient: c.cfg.Remote.HTTPClient,
			// A session whose stream cannot be had back is ended, and the
			// provider replaced: its supervisor backs off, not the SDK.
			MaxRetries: 2,
		}, nil
	}
	if err := c.proc.Initialize(ctx); err != nil {
		return nil, err
	}
	stdout, stdin, err := c.proc.Stdio()
	if err != nil {
		return nil, fmt.Errorf("mcp %q: %w", c.id, err)
	}
	return &sdk.IOTransport{Reader: stdout, Writer: stdin}, nil
}
