package mcp

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// maxLoggedParams bounds the params of an unknown notification in a log
// line.
const maxLoggedParams = 500

// serverTraffic sees what the server sends on its own before the SDK
// handles it: it hands progress to the call that asked for it and logs the
// rest. The SDK answers the server's requests (ping; roots/list if there
// are roots) and refuses the others, which are logged as warnings.
func (c *Client) serverTraffic(next sdk.MethodHandler) sdk.MethodHandler {
	return func(ctx context.Context, method string, req sdk.Request) (sdk.Result, error) {
		if !strings.HasPrefix(method, "notifications/") {
			if method == "roots/list" && len(c.cfg.Roots) == 0 {
				// The SDK would answer an empty list; the client declared
				// no roots, so a server has no business asking.
				c.log.Warn("server request refused", zap.String("method", method))
				return nil, &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound, Message: "this client offers no roots"}
			}
			res, err := next(ctx, method, req)
			if err != nil && !(method == "sampling/createMessage" && c.cfg.Sampler != nil) { // the sampler logs its own
				c.log.Warn("server request refused", zap.String("method", method))
			}
			return res, err
		}
		params, _ := json.Marshal(req.GetParams())
		switch {
		case method == "notifications/progress":
			c.routes.route(params)
			c.logProgress(params)
		case method == "notifications/message":
			c.logMessage(params)
		case strings.HasSuffix(method, "/list_changed"):
			c.log.Info("server list changed", zap.String("method", method))
		default:
			c.log.Debug("server notification", zap.String("method", method),
				zap.String("params", truncate(lifecycle.Redact(string(params)), maxLoggedParams)))
		}
		return next(ctx, method, req)
	}
}

func (c *Client) logProgress(params json.RawMessage) {
	ce := c.log.Check(zapcore.DebugLevel, "server progress")
	if ce == nil {
		return
	}
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

// logMessage logs the server's own log message at the level it names. Its
// level and logger are fields of their own, server_level and
// server_logger, so as not to clash with the log line's.
func (c *Client) logMessage(params json.RawMessage) {
	var p struct {
		Level  string          `json:"level"`
		Logger string          `json:"logger"`
		Data   json.RawMessage `json:"data"`
	}
	_ = json.Unmarshal(params, &p)
	ce := c.log.Check(logLevel(p.Level), "server log")
	if ce == nil {
		return
	}
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
