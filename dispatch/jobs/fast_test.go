package jobs

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs/internal/fastyaml"
)

// TestFastPathTakesPlainFiles checks that the fast parser, not prow's
// decoding, reads the test job files and generated OpenShift-shaped ones in
// prowgen's block style and in the hand-written flow style, and that Load
// reads the generated trees as prow's reader does.
func TestFastPathTakesPlainFiles(t *testing.T) {
	roots := []string{filepath.Join("testdata", "jobs"), filepath.Join("testdata", "dup")}
	for _, style := range []treeStyle{blockStyle, flowStyle} {
		dir := filepath.Join(t.TempDir(), style.String())
		writeOpenShiftTreeStyle(t, dir, 2, 2, style)
		roots = append(roots, dir)
		t.Run(style.String(), func(t *testing.T) {
			checkSameAsProw(t, dir, DefaultLabels())
		})
	}
	var p fastyaml.Parser
	for _, root := range roots {
		err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || filepath.Ext(path) != ".yaml" {
				return err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if _, ok := p.Parse(data); !ok {
				t.Errorf("%s: left to prow's decoding", path)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
