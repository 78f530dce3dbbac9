package plugin

import (
	"context"
	"testing"

	"github.com/sirupsen/logrus"
	"sigs.k8s.io/prow/pkg/github"
	"sigs.k8s.io/prow/pkg/github/fakegithub"
)

// TestHandlePush: a push to the branch the dispatcher reads its job config
// from asks for one dispatch (which fetches first); any other push, and
// every push without job_config_repo, asks nothing.
func TestHandlePush(t *testing.T) {
	push := func(fullName, ref string) github.PushEvent {
		return github.PushEvent{Ref: ref, After: "abc123", Repo: github.Repo{FullName: fullName}}
	}
	for _, tc := range []struct {
		name           string
		repo, branch   string
		event          github.PushEvent
		wantDispatches int
	}{
		{"the job config's branch", "openshift/release", "", push("openshift/release", "refs/heads/master"), 1},
		{"repo names match whatever their case", "openshift/release", "", push("OpenShift/Release", "refs/heads/master"), 1},
		{"a configured branch", "openshift/release", "main", push("openshift/release", "refs/heads/main"), 1},
		{"another branch", "openshift/release", "", push("openshift/release", "refs/heads/feature"), 0},
		{"a tag", "openshift/release", "", push("openshift/release", "refs/tags/master"), 0},
		{"another repo", "openshift/release", "", push("openshift/origin", "refs/heads/master"), 0},
		{"no job_config_repo", "", "", push("openshift/release", "refs/heads/master"), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newFakeDispatcher()
			p := newTestPlugin(t, fakegithub.NewFakeClient(), d)
			p.opts.Config.JobConfigRepo, p.opts.Config.JobConfigBranch = tc.repo, tc.branch
			if err := p.HandlePush(context.Background(), logrus.NewEntry(logrus.New()), tc.event); err != nil {
				t.Fatal(err)
			}
			d.mu.Lock()
			defer d.mu.Unlock()
			if d.dispatches != tc.wantDispatches {
				t.Errorf("%d dispatches, want %d", d.dispatches, tc.wantDispatches)
			}
		})
	}
}
