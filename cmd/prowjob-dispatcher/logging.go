package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sync"

	"github.com/go-logr/logr"
	"github.com/sirupsen/logrus"
	"k8s.io/klog/v2"
	"sigs.k8s.io/prow/pkg/config/secret"
)

// logFlags are the logging flags of every long-running subcommand: one
// level set and one format for the whole process.
type logFlags struct {
	level, format string
}

// The values of --log-format.
const (
	logFormatJSON = "json"
	logFormatText = "text"
)

func (l *logFlags) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&l.level, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&l.format, "log-format", logFormatJSON, "log format: json (one JSON object a line) or text (key=value); prow's and Kubernetes' libraries log through it too")
}

func (l *logFlags) Validate() error {
	_, err := parseLevel(l.level)
	if l.format != logFormatJSON && l.format != logFormatText {
		err = errors.Join(err, fmt.Errorf("--log-format %q: want %s or %s", l.format, logFormatJSON, logFormatText))
	}
	return err
}

// parseLevel parses --log-level.
func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log-level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// handler is the process's one log handler, writing to w with prow's
// secrets (the GitHub token) censored from every line and durations as
// strings ("2h0m0s", not 7200000000000).
func (l *logFlags) handler(w io.Writer) slog.Handler {
	level, _ := parseLevel(l.level)
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Value.Kind() == slog.KindDuration {
			a.Value = slog.StringValue(a.Value.Duration().String())
		}
		return a
	}}
	w = &censoringWriter{w: w}
	if l.format == logFormatText {
		return slog.NewTextHandler(w, opts)
	}
	return slog.NewJSONHandler(w, opts)
}

// setUp returns the process's logger on w, and routes the loggers of the
// libraries into it: logrus' standard logger (prow's git and GitHub
// clients) and klog (client-go). logr's V(n) is slog level -n, so debug
// shows V(1)..V(4).
func (l *logFlags) setUp(w io.Writer) (logr.Logger, slog.Handler) {
	h := l.handler(w)
	log := logr.FromSlogHandler(h)
	routeLogrus(logrus.StandardLogger(), h)
	klog.SetLogger(log.WithName("klog"))
	return log, h
}

// routeLogrus makes lg log through h alone, at h's level.
func routeLogrus(lg *logrus.Logger, h slog.Handler) {
	lg.SetOutput(io.Discard)
	lg.SetFormatter(discardFormatter{})
	lg.ReplaceHooks(logrus.LevelHooks{})
	lg.AddHook(slogHook{h: h})
	level := logrus.TraceLevel
	for level > logrus.PanicLevel && !h.Enabled(context.Background(), slogLevel(level)) {
		level--
	}
	lg.SetLevel(level)
}

// slogLevel is the slog level of a logrus level.
func slogLevel(l logrus.Level) slog.Level {
	switch l {
	case logrus.TraceLevel:
		return slog.LevelDebug - 4
	case logrus.DebugLevel:
		return slog.LevelDebug
	case logrus.InfoLevel:
		return slog.LevelInfo
	case logrus.WarnLevel:
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}

// slogHook hands each logrus entry to a slog handler.
type slogHook struct{ h slog.Handler }

func (slogHook) Levels() []logrus.Level { return logrus.AllLevels }

func (k slogHook) Fire(e *logrus.Entry) error {
	ctx := e.Context
	if ctx == nil {
		ctx = context.Background()
	}
	lvl := slogLevel(e.Level)
	if !k.h.Enabled(ctx, lvl) {
		return nil
	}
	r := slog.NewRecord(e.Time, lvl, e.Message, 0)
	for _, key := range slices.Sorted(maps.Keys(e.Data)) {
		v := e.Data[key]
		if err, ok := v.(error); ok {
			v = err.Error()
		}
		r.AddAttrs(slog.Any(key, v))
	}
	return k.h.Handle(ctx, r)
}

// discardFormatter formats nothing: logrus' own output is discarded.
type discardFormatter struct{}

func (discardFormatter) Format(*logrus.Entry) ([]byte, error) { return nil, nil }

// censoringWriter removes the secrets prow's secret agent holds (the
// GitHub token, which git's log lines can carry in a remote's URL) from
// each line written.
type censoringWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (c *censoringWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.w.Write(secret.Censor(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}
