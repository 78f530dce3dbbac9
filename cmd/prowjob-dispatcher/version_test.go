package main

import (
	"bytes"
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestVersion(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		want    string
		wantErr string
	}{
		{name: "no args", want: "version: dev\nrevision: unknown\ngo: " + runtime.Version() + "\n"},
		{name: "extra arg", args: []string{"now"}, wantErr: `unexpected arguments ["now"]`},
		{name: "unknown flag", args: []string{"--short"}, wantErr: "flag provided but not defined"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := printVersion(tc.args, &out)
			if (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err %v, want %q", err, tc.wantErr)
			}
			if err == nil && out.String() != tc.want {
				t.Errorf("printed %q, want %q", out.String(), tc.want)
			}
		})
	}
}

func TestBuildInfoMetric(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(buildInfo())
	want := `# HELP prowjob_dispatcher_build_info Always 1; the labels say which build runs: version and revision stamped by the build, and the Go version.
# TYPE prowjob_dispatcher_build_info gauge
prowjob_dispatcher_build_info{goversion="` + runtime.Version() + `",revision="unknown",version="dev"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "prowjob_dispatcher_build_info"); err != nil {
		t.Error(err)
	}
}
