package main

import (
	"flag"
	"strings"
	"testing"
)

func TestGitJobsFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // "" for valid
	}{
		{nil, ""},
		{[]string{"--job-config-git-url", "https://github.com/openshift/release"}, ""},
		{[]string{"--job-config-git-url", "http://127.0.0.1:8080/openshift/release.git", "--configs-from-git"}, ""},
		{[]string{"--configs-from-git"}, "need --job-config-git-url"},
		{[]string{"--job-config-git-token-path", "/var/run/git/token"}, "need --job-config-git-url"},
		{[]string{"--job-config-git-url", "https://github.com/openshift/release", "--job-config-git-token-path", "/var/run/git/token", "--job-config-git-username", "bot"}, ""},
		{[]string{"--job-config-git-url", "https://github.com/openshift/release", "--job-config-git-username", "bot"}, "--job-config-git-username needs --job-config-git-token-path"},
		{[]string{"--job-config-git-url", "git@github.com:openshift/release"}, "--job-config-git-url"},
		{[]string{"--job-config-git-url", "https://github.com/openshift"}, "SCHEME://HOST/ORG/REPO"},
		{[]string{"--job-config-git-url", "https://github.com/openshift/release", "--job-config-git-branch", ""}, "--job-config-git-branch"},
		{[]string{"--job-config-git-url", "https://github.com/openshift/release", "--job-config-git-interval", "10ms"}, "at least 1s"},
	} {
		var f gitJobsFlags
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		f.AddFlags(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		err := f.Validate()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%v: err = %v, want %q", tc.args, err, tc.want)
		}
	}
}
