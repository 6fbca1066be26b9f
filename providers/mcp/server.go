package mcp

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/sourcegraph/jsonrpc2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// maxLoggedParams bounds the params of an unknown notification in a log
// line.
const maxLoggedParams = 500

// serverTraffic handles what the server sends on its own. It runs on the
// goroutine that reads the server's output, one message at a time, in
// order: a progress notification is logged before the answer that follows
// it is returned. It never waits for the server; its only writes are the
// short answers to the server's requests.
type serverTraffic struct {
	log    *zap.Logger
	routes *progressRoutes // nil: progress is only logged
	roots  []Root          // answered to roots/list; none: not offered
}

var _ jsonrpc2.Handler = serverTraffic{}

func (s serverTraffic) Handle(ctx context.Context, conn *jsonrpc2.Conn, req *jsonrpc2.Request) {
	if req.Notif {
		s.notification(req)
		return
	}
	if req.Method == "ping" { // the specification requires the answer
		_ = conn.Reply(ctx, req.ID, struct{}{})
		return
	}
	if req.Method == "roots/list" && len(s.roots) > 0 {
		_ = conn.Reply(ctx, req.ID, map[string]any{"roots": s.roots})
		return
	}
	// The client offers nothing else (no sampling, no elicitation, and
	// roots only if it has some), so a server has no business asking;
	// say so rather than hang it.
	s.log.Warn("server request refused", zap.String("method", req.Method))
	_ = conn.ReplyWithError(ctx, req.ID, &jsonrpc2.Error{
		Code:    jsonrpc2.CodeMethodNotFound,
		Message: fmt.Sprintf("this client does not offer %s", req.Method),
	})
}

func (s serverTraffic) notification(req *jsonrpc2.Request) {
	var params json.RawMessage
	if req.Params != nil {
		params = *req.Params
	}
	switch {
	case req.Method == "notifications/progress":
		s.progress(params)
	case req.Method == "notifications/message":
		s.message(params)
	case strings.HasSuffix(req.Method, "/list_changed"):
		s.log.Info("server list changed", zap.String("method", req.Method))
	default:
		s.log.Debug("server notification", zap.String("method", req.Method),
			zap.String("params", truncate(lifecycle.Redact(string(params)), maxLoggedParams)))
	}
}

func (s serverTraffic) progress(params json.RawMessage) {
	if s.routes != nil {
		s.routes.route(params)
	}
	if ce := s.log.Check(zapcore.DebugLevel, "server progress"); ce != nil {
		var p struct {
			ProgressToken any      `json:"progressToken"`
			Progress      float64  `json:"progress"`
			Total         *float64 `json:"total"`
			Message       string   `json:"message"`
		}
		_ = json.Unmarshal(params, &p)
		fields := []zap.Field{zap.Any("progress_token", p.ProgressToken), zap.Float64("progress", p.Progress)}
		if p.Total != nil {
			fields = append(fields, zap.Float64("total", *p.Total))
		}
		if p.Message != "" {
			fields = append(fields, zap.String("message", lifecycle.Redact(p.Message)))
		}
		ce.Write(fields...)
	}
}

// message logs the server's own log message at the level it names. Its
// level and logger are fields of their own, server_level and
// server_logger, so as not to clash with the log line's.
func (s serverTraffic) message(params json.RawMessage) {
	var p struct {
		Level  string          `json:"level"`
		Logger string          `json:"logger"`
		Data   json.RawMessage `json:"data"`
	}
	_ = json.Unmarshal(params, &p)
	if ce := s.log.Check(logLevel(p.Level), "server log"); ce != nil {
		data := string(p.Data)
		var text string
		if json.Unmarshal(p.Data, &text) == nil {
			data = text // a string, the common case, without its quotes
		}
		fields := []zap.Field{zap.String("server_level", p.Level), zap.String("data", lifecycle.Redact(data))}
		if p.Logger != "" {
			fields = append(fields, zap.String("server_logger", p.Logger))
		}
		ce.Write(fields...)
	}
}

// logLevel maps MCP's levels, syslog's (RFC 5424), to zap's: notice is
// zap's warn, as zap has nothing between info and warn, and everything
// from error up is error, as a server's critical is not the client's
// panic.
func logLevel(level string) zapcore.Level {
	switch level {
	case "debug":
		return zapcore.DebugLevel
	case "notice", "warning":
		return zapcore.WarnLevel
	case "error", "critical", "alert", "emergency":
		return zapcore.ErrorLevel
	}
	return zapcore.InfoLevel // info, and levels the specification does not name
}
