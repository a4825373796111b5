package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/credbot/credbot/internal/logctx"
	"github.com/redis/go-redis/v9"
)

// NewLogger is the process's logger. CREDBOT_LOG_FORMAT picks json (one
// object per line, what any log pipeline takes; the default of serve) or
// text (the default of the interactive commands); CREDBOT_LOG_LEVEL picks
// DEBUG, INFO (default), WARN or ERROR. Anything else is refused, naming what
// is allowed. go-redis's own messages (dial failures, pool trouble) are routed
// through it as well, so that no line escapes the format.
func NewLogger(getenv func(string) string, w io.Writer, defaultFormat string) (*slog.Logger, error) {
	level, format, err := logSettings(getenv, defaultFormat)
	if err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewJSONHandler(w, opts)
	if format == "text" {
		h = slog.NewTextHandler(w, opts)
	}
	log := slog.New(logctx.Handler(h))
	redis.SetLogger(redisLogger{log: log})
	return log, nil
}

// logSettings reads CREDBOT_LOG_LEVEL and CREDBOT_LOG_FORMAT, refusing what
// they do not take (both problems at once).
func logSettings(getenv func(string) string, defaultFormat string) (slog.Level, string, error) {
	var errs []error
	level := slog.LevelInfo
	if v := getenv("CREDBOT_LOG_LEVEL"); v != "" {
		switch strings.ToUpper(v) {
		case "DEBUG", "INFO", "WARN", "ERROR":
			_ = level.UnmarshalText([]byte(v))
		default:
			errs = append(errs, fmt.Errorf("CREDBOT_LOG_LEVEL: %q is not one of DEBUG, INFO, WARN, ERROR", v))
		}
	}
	format := strings.ToLower(or(getenv("CREDBOT_LOG_FORMAT"), defaultFormat))
	if format != "json" && format != "text" {
		errs = append(errs, fmt.Errorf("CREDBOT_LOG_FORMAT: %q is not json or text", format))
	}
	return level, format, errors.Join(errs...)
}

// redisLogger takes go-redis's printf-style messages into slog, at WARN:
// it only speaks when something is wrong with a connection.
type redisLogger struct{ log *slog.Logger }

func (r redisLogger) Printf(ctx context.Context, format string, v ...any) {
	r.log.WarnContext(ctx, "redis client", "detail", fmt.Sprintf(format, v...))
}
