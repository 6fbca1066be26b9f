package fxmodule

import (
	"os"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/gleitzeit/gleitzeit/lifecycle"
)

// deadlinePassed runs when fx's stop context ends. If a provider's
// cleanup has not ended by then, it says which, at error level. fx may not
// let any hook's error reach app.Stop's: once its deadline passes, fx
// returns its bare context error, whichever hook was slow, and runs no
// further hook. This line is the one place that always names the culprit.
func (s *session) deadlinePassed() {
	if unfinished := s.unfinished(); len(unfinished) > 0 {
		s.log.Error("fx's stop context ended before these providers' cleanups ended; they go on in the background",
			zap.Strings("providers", unfinished))
	}
}

// unfinished returns the providers whose cleanup is running or waiting,
// or was abandoned and has not returned since. One that ran out its own
// timeout is not among them: the registry's Stop reported it.
func (s *session) unfinished() []string {
	var ids []string
	for _, p := range s.reg.Providers() {
		if p.State == lifecycle.StateCleaning || p.Outcome != nil && p.Outcome.Result == lifecycle.ResultAbandoned {
			ids = append(ids, p.ID)
		}
	}
	return ids
}

// alarmLogger is the session's logger: the graph's, or, if it has none,
// one that writes errors alone to standard error, where fx's default
// logger writes its events too.
func alarmLogger(l *zap.Logger) *zap.Logger {
	if l != nil {
		return l.Named("gleitzeit")
	}
	enc := zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig())
	return zap.New(zapcore.NewCore(enc, zapcore.Lock(os.Stderr), zapcore.ErrorLevel)).Named("gleitzeit")
}
