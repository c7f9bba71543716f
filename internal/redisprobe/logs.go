package redisprobe

import (
	"context"
	"fmt"

	"github.com/go-logr/logr"
	"github.com/redis/go-redis/v9"
)

// RouteLogs sends go-redis's own log lines (failed dials while a Redis is
// down, and the like) to log at V(1), instead of plain lines on stderr:
// the probes already report those failures, with reasons.
func RouteLogs(log logr.Logger) { redis.SetLogger(logrLogger{log.WithName("go-redis")}) }

type logrLogger struct{ log logr.Logger }

func (l logrLogger) Printf(_ context.Context, format string, v ...any) {
	l.log.V(1).Info(fmt.Sprintf(format, v...))
}
