package mcptest

import (
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// httpStartWait bounds how long server-everything takes to listen: node
// loads the whole SDK first, which on a loaded machine takes seconds.
const httpStartWait = 30 * time.Second

// HTTPServer is server-everything in its Streamable HTTP mode, on a
// loopback port of its own, which it keeps across Stop and Start: a
// server that goes away and comes back.
type HTTPServer struct {
	// URL is its MCP endpoint.
	URL  string
	t    testing.TB
	argv []string
	port int

	mu     sync.Mutex // guards the fields below, and Start and Stop
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd is reaped
	stderr *output
}

// EverythingHTTP starts the pinned server-everything as a Streamable HTTP
// server (node dist/index.js streamableHttp) and stops it at the test's
// end. It fails the test as [Everything] does, and if the server does not
// listen in time.
func EverythingHTTP(t testing.TB) *HTTPServer {
	t.Helper()
	s := &HTTPServer{t: t, argv: append(everything(t), "streamableHttp"), port: freePort(t)}
	s.URL = "http://127.0.0.1:" + strconv.Itoa(s.port) + "/mcp"
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// freePort is a loopback port nothing listens on, as the kernel picks one.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("mcptest: a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Start starts the server, if it is not running, and waits until it
// answers HTTP.
func (s *HTTPServer) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return
	}
	cmd := exec.Command(s.argv[0], s.argv[1:]...)
	cmd.Env = append(os.Environ(), "PORT="+strconv.Itoa(s.port))
	stderr := &output{}
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Stop ends what it starts, too
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("mcptest: start %s: %v", s.argv, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.cmd, s.exited, s.stderr = cmd, exited, stderr
	deadline := time.Now().Add(httpStartWait)
	for {
		// Any answer will do: a GET without a session is refused, 400.
		if resp, err := http.Get(s.URL); err == nil {
			resp.Body.Close()
			return
		}
		select {
		case <-exited:
			s.cmd = nil
			s.t.Fatalf("mcptest: %s exited before it listened (%v):\n%s", s.argv, cmd.ProcessState, stderr)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("mcptest: %s did not listen on %s within %v:\n%s", s.argv, s.URL, httpStartWait, stderr)
		}
	}
}

// Proxy is a reverse proxy to the server, for a test that stands in front
// of it to see its requests, hold them or refuse them. It passes
// server-sent events on as they come, and logs nothing of the server's
// going away, which such tests bring about.
func (s *HTTPServer) Proxy() *httputil.ReverseProxy {
	p := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: "127.0.0.1:" + strconv.Itoa(s.port)})
	p.FlushInterval = -1
	p.ErrorLog = log.New(io.Discard, "", 0)
	return p
}

// Stop kills the server, and whatever it started, and waits until it has
// exited: its sessions are gone with it.
func (s *HTTPServer) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-s.exited:
	case <-time.After(httpStartWait):
		s.t.Errorf("mcptest: %s (pid %d) not reaped after SIGKILL", s.argv, s.cmd.Process.Pid)
	}
	s.cmd = nil
}

// output is a child's stderr, kept for a failure's message.
type output struct {
	mu  sync.Mutex
	buf []byte
}

func (o *output) Write(b []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf = append(o.buf, b...)
	return len(b), nil
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return string(o.buf)
}
