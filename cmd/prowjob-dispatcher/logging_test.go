package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// textAttrRE matches one key=value of slog's text format.
var textAttrRE = regexp.MustCompile(`(\w+)=("(?:[^"\\]|\\.)*"|\S+)`)

// TestOneLogFormat: the process's logr logger, logrus' standard logger
// (prow's libraries) and a plugin's own logrus logger write the same
// format to the same stream, at one level, with durations as strings.
func TestOneLogFormat(t *testing.T) {
	for _, tc := range []struct {
		format string
		parse  func(t *testing.T, line string) map[string]string
	}{
		{logFormatJSON, func(t *testing.T, line string) map[string]string {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("not JSON (%v): %s", err, line)
			}
			out := map[string]string{}
			for k, v := range m {
				b, _ := json.Marshal(v)
				out[k] = strings.Trim(string(b), `"`)
			}
			return out
		}},
		{logFormatText, func(t *testing.T, line string) map[string]string {
			out := map[string]string{}
			for _, m := range textAttrRE.FindAllStringSubmatch(line, -1) {
				out[m[1]] = strings.Trim(m[2], `"`)
			}
			if out["level"] == "" || out["msg"] == "" {
				t.Fatalf("not slog text: %s", line)
			}
			return out
		}},
	} {
		t.Run(tc.format, func(t *testing.T) {
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			var l logFlags
			l.AddFlags(fs)
			if err := fs.Parse([]string{"--log-format", tc.format, "--log-level", "info"}); err != nil {
				t.Fatal(err)
			}
			if err := l.Validate(); err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			log, h := l.setUp(&buf)
			log.Info("from logr", "ttl", 2*time.Hour)
			log.V(1).Info("debug from logr, not shown")
			logrus.WithField("took", 1500*time.Millisecond).WithError(errors.New("boom")).Warn("from prow")
			logrus.Debug("debug from prow, not shown")
			plugin := logrus.New()
			routeLogrus(plugin, h)
			plugin.WithField("plugin", "p").Info("from the plugin")

			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			if len(lines) != 3 {
				t.Fatalf("%d lines, want 3:\n%s", len(lines), buf.String())
			}
			want := []map[string]string{
				{"msg": "from logr", "level": "INFO", "ttl": "2h0m0s"},
				{"msg": "from prow", "level": "WARN", "took": "1.5s", "error": "boom"},
				{"msg": "from the plugin", "level": "INFO", "plugin": "p"},
			}
			for i, line := range lines {
				got := tc.parse(t, line)
				for k, v := range want[i] {
					if got[k] != v {
						t.Errorf("line %d: %s = %q, want %q: %s", i+1, k, got[k], v, line)
					}
				}
			}
		})
	}
	var l logFlags
	l.level, l.format = "verbose", "xml"
	if err := l.Validate(); err == nil || !strings.Contains(err.Error(), "--log-level") || !strings.Contains(err.Error(), "--log-format") {
		t.Errorf("validate(verbose, xml) = %v, want both flags named", err)
	}
}
