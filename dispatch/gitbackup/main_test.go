package gitbackup

import (
	"os"
	"testing"

	"github.com/sirupsen/logrus"
)

// TestMain quiets prow's git client, which logs each git command at info
// level through logrus' standard logger.
func TestMain(m *testing.M) {
	logrus.SetLevel(logrus.WarnLevel)
	os.Exit(m.Run())
}
