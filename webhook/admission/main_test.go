package admission

import (
	"log/slog"
	"os"
	"testing"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// TestMain gives controller-runtime's package logger (the webhook server's
// and certwatcher's) a sink, as serve does, so it does not warn after 30 s.
func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.FromSlogHandler(slog.DiscardHandler))
	os.Exit(m.Run())
}
