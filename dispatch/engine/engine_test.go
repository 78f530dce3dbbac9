package engine_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/config"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
)

func TestNewErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		modify func(*engine.Input)
		want   string
	}{
		{"no dispatcher config", func(in *engine.Input) { in.Config = nil }, "no dispatcher config"},
		{"bad group path", func(in *engine.Input) {
			in.Config.Groups["build02"] = config.Group{Paths: []string{"ok", "(unclosed"}}
		}, `groups["build02"].paths[1]`},
		{"too many clusters", func(in *engine.Input) {
			for i := range 70 {
				in.Clusters.Providers["aws"] = append(in.Clusters.Providers["aws"], config.Cluster{Name: fmt.Sprintf("extra%02d", i)})
			}
		}, "at most 64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := fixture(t)
			tc.modify(&in)
			_, err := engine.New(in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestNewUsesCompiledPathsFirst(t *testing.T) {
	j := fileJob("j", "openshift/special.yaml")
	in := fixture(t, j)
	// The loader's compiled regex wins over Paths (here deliberately different).
	in.Config.Groups["build02"] = config.Group{Paths: []string{"^never$"}, PathREs: []*regexp.Regexp{regexp.MustCompile("special")}}
	_, tb, _ := dispatch(t, in)
	if a := tb.ByJob()["j"]; a.Cluster != "build02" {
		t.Errorf("%+v, want build02 by the compiled path", a)
	}
}
