package mcp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
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
		return fmt.Errorf("mcp: Config.Remote.URL %q is not a URL", lifecycle.Redact(r.URL))
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("mcp: Config.Remote.URL %q: the scheme is %q, not http or https", lifecycle.Redact(r.URL), u.Scheme)
	case u.Host == "":
		return fmt.Errorf("mcp: Config.Remote.URL %q has no host", lifecycle.Redact(r.URL))
	}
	if r.ID == "" {
		r.ID = "mcp"
	}
	if r.Protocol == "" {
		r.Protocol = "mcp"
	}
	if r.HTTPClient == nil {
		r.HTTPClient = &http.Client{Transport: defaultTransport()}
	}
	if len(r.Header) > 0 {
		base := r.HTTPClient.Transport
		if base == nil {
			base = http.DefaultTransport
		}
		hc := *r.HTTPClient
		hc.Transport = withHeader{base: base, header: r.Header.Clone()}
		r.HTTPClient = &hc
	}
	c.cfg.Remote = r
	c.id, c.protocol = r.ID, r.Protocol
	return nil
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

// withHeader adds the configured headers to every request.
type withHeader struct {
	base   http.RoundTripper
	header http.Header
}

func (w withHeader) RoundTrip(req *http.Request) (*http.Response, error) {
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

// callError is the error of a call that failed: the child's exit or the
// session's end if that is why, as the caller can tell it apart from the
// server's own answer.
func (c *Client) callError(ctx context.Context, method string, err error) error {
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return fmt.Errorf("mcp %q: call %q: %w", c.id, method, err)
	}
	if c.proc != nil && !c.proc.Running() {
		return fmt.Errorf("mcp %q: call %q: %w", c.id, method, c.proc.Closed(ctx))
	}
	if _, live := c.live(); !live || errors.Is(err, sdk.ErrConnectionClosed) || errors.Is(err, sdk.ErrSessionMissing) {
		if c.proc != nil {
			return fmt.Errorf("mcp %q: call %q: %w", c.id, method, c.proc.Closed(ctx))
		}
		return fmt.Errorf("mcp %q: call %q: %w", c.id, method, c.sessionEnded())
	}
	return fmt.Errorf("mcp %q: call %q: %w", c.id, method, lifecycle.RedactError(err))
}
