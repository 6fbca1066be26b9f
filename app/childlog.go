package app

import (
	"bytes"
	"sync"

	"go.uber.org/zap"

	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// maxChildLine bounds one logged line of a child's standard error: a child
// that writes megabytes without a newline is logged in pieces of this size.
const maxChildLine = 4096

// childStderr logs a child's standard error a line at a time, each line a
// log entry with the provider's id, redacted: a child's output is not the
// service's log format, and must not be copied into it raw.
type childStderr struct {
	log *zap.Logger

	mu   sync.Mutex // guards buf and last: exec copies stderr on a goroutine of its own
	buf  []byte
	last string // the last line logged, redacted: a crash's last words
}

func newChildStderr(log *zap.Logger, id string) *childStderr {
	return &childStderr{log: log.With(zap.String("provider", id))}
}

func (c *childStderr) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf = append(c.buf, p...)
	for {
		i := bytes.IndexByte(c.buf, '\n')
		switch {
		case i >= 0:
			c.line(c.buf[:i])
			c.buf = c.buf[i+1:]
		case len(c.buf) >= maxChildLine:
			c.line(c.buf[:maxChildLine])
			c.buf = c.buf[maxChildLine:]
		default:
			c.buf = append([]byte(nil), c.buf...) // let go of what was logged
			return len(p), nil
		}
	}
}

func (c *childStderr) line(b []byte) {
	if len(b) > maxChildLine {
		b = b[:maxChildLine]
	}
	c.last = lifecycle.Redact(string(bytes.TrimRight(b, "\r")))
	c.log.Info("child stderr", zap.String("line", c.last))
}

// lastLine is the last line the child wrote, redacted; "" if none.
func (c *childStderr) lastLine() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// Flush logs what is left of a last line that ended without a newline: a
// crash message is often the child's last words. The process provider
// calls it once the child has exited.
func (c *childStderr) Flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.buf) > 0 {
		c.line(c.buf)
		c.buf = nil
	}
}
