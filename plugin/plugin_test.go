package plugin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/prow/pkg/github"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/api"
)

func TestHandleIssueComment(t *testing.T) {
	rescheduleReason := "requested by @" + teamMember + " in " + testPRURL
	cases := []struct {
		name  string
		login string
		body  string
		// edit changes the event before it is handled.
		edit func(*github.IssueCommentEvent)
		// err is the fake dispatcher's answer to every call.
		err error

		wantComments    int
		want            []string
		notWant         []string
		wantDispatches  int
		wantReschedules []api.RescheduleRequest
	}{
		{
			name: "dispatch by anyone lists the PR's presubmits for its base branch", login: stranger, body: "/dispatch",
			wantComments: 1,
			want: []string{
				"@stranger: 3 presubmit(s) of `openshift/origin` could run against `main`",
				"| Job | Cluster | Reason |",
				"| `pull-ci-openshift-origin-main-unit` | `build01` | balanced: lowest load \\| of 3 |",
				"| `pull-ci-openshift-origin-main-e2e-aws` | `build03` | override; override by @alice, expires 2030-01-02T03:04:05Z (aws quota) |",
				"| `pull-ci-openshift-origin-main-e2e-aws-arm64` | _not yet assigned_ |",
				"In response to [this](" + testPRURL + "#issuecomment-1)",
				">/dispatch",
			},
			// The openshift/origin folder exists, so a flat file elsewhere is not read.
			notWant: []string{"release-4.18", "any-branch-lint", "pull-origin-from-flat-file"},
		},
		{
			name: "dispatch is case-insensitive and found anywhere in a multi-line comment", login: stranger,
			body: "Looks good.\n\n/DISPATCH  \r\nthanks", wantComments: 1,
			want: []string{"3 presubmit(s)", "`build01`"},
		},
		{
			name: "dispatch refresh by an org member", login: orgMember, body: "/dispatch refresh",
			wantComments: 1, wantDispatches: 1,
			want: []string{"dispatched 120 jobs; 3 moved (largest load/target ratio 1.05)", "| `build01` | 1 |", "| `build02` | 2 |",
				"12 job(s) need what no usable cluster has; none was sent to a cluster that lacks it",
				"- `pull-ci-gpu-e2e`: no usable cluster meets capabilities [gpu]; kept on its last eligible cluster `build04`",
				"- `pull-ci-gpu-new`: no usable cluster meets capabilities [gpu]; left on the cluster its job config gives",
				"- ... and 10 more (see /readyz)"},
		},
		{
			name: "dispatch refresh by a stranger is refused", login: stranger, body: "/dispatch refresh",
			wantComments: 1,
			want:         []string{"sorry, only members of the `openshift` GitHub org(s); members of the `openshift-priv/test-platform` GitHub team(s); @Listed-User may use `/dispatch refresh`. Nothing was changed."},
		},
		{
			name: "reschedule to a named cluster by a team member", login: teamMember, body: "/reschedule pull-ci-openshift-origin-main-unit build02",
			wantComments:    1,
			want:            []string{"moved `pull-ci-openshift-origin-main-unit`: `build01` → `build02`.", "Reason: " + rescheduleReason, "expires 2026-11-25T10:00:00Z"},
			wantReschedules: []api.RescheduleRequest{{Job: "pull-ci-openshift-origin-main-unit", Cluster: "build02", TTL: "72h0m0s", Reason: rescheduleReason, By: teamMember}},
		},
		{
			name: "reschedule without a cluster by a listed user (logins compare case-insensitively)", login: listedUser,
			body: "/reschedule pull-ci-openshift-origin-main-e2e-aws", wantComments: 1,
			want: []string{"`build03` → `build02`"},
			wantReschedules: []api.RescheduleRequest{{Job: "pull-ci-openshift-origin-main-e2e-aws", TTL: "72h0m0s",
				Reason: "requested by @" + listedUser + " in " + testPRURL, By: listedUser}},
		},
		{
			name: "reschedule by a stranger is refused and nothing reaches the dispatcher", login: stranger,
			body: "/reschedule pull-ci-openshift-origin-main-unit build02", wantComments: 1,
			want: []string{"sorry, only", "may use `/reschedule`. Nothing was changed."},
		},
		{
			name: "reschedule of an unknown job", login: orgMember, body: "/reschedule no-such-job build02",
			wantComments: 1,
			want:         []string{"I could not move `no-such-job` to `build02`: the dispatcher does not know that: job \"no-such-job\": not found. Nothing was changed."},
			wantReschedules: []api.RescheduleRequest{{Job: "no-such-job", Cluster: "build02", TTL: "72h0m0s",
				Reason: "requested by @" + orgMember + " in " + testPRURL, By: orgMember}},
		},
		{
			name: "reschedule to an unknown cluster", login: orgMember, body: "/reschedule pull-ci-openshift-origin-main-unit build99",
			wantComments: 1,
			want:         []string{"the dispatcher refused the request: cluster \"build99\": unknown. Nothing was changed."},
			wantReschedules: []api.RescheduleRequest{{Job: "pull-ci-openshift-origin-main-unit", Cluster: "build99", TTL: "72h0m0s",
				Reason: "requested by @" + orgMember + " in " + testPRURL, By: orgMember}},
		},
		{
			name: "reschedule without a job gets the usage", login: orgMember, body: "/reschedule",
			wantComments: 1, want: []string{"I did not understand that. Usage: `/reschedule <job-name> [cluster]`"},
		},
		{
			name: "reschedule with extra arguments gets the usage", login: orgMember, body: "/reschedule job build02 now please",
			wantComments: 1, want: []string{"Usage: `/reschedule <job-name> [cluster]`"},
		},
		{
			name: "reschedule does not take its arguments from the next line", login: orgMember, body: "/reschedule\nbuild02",
			wantComments: 1, want: []string{"Usage: `/reschedule <job-name> [cluster]`"},
		},
		{
			name: "dispatch with an unknown argument gets the usage", login: stranger, body: "/dispatch everything",
			wantComments: 1, want: []string{"Usage: `/dispatch [refresh|plan]`"},
		},
		{
			name: "two commands in one comment get one reply with a section each", login: orgMember, body: "/dispatch\n/dispatch refresh",
			wantComments: 1, wantDispatches: 1, want: []string{"**`/dispatch`**: 3 presubmit(s)", "**`/dispatch refresh`**: dispatched 120 jobs"},
		},
		{
			name: "a command repeated in one comment runs once", login: orgMember, body: strings.Repeat("/dispatch refresh\n", 12),
			wantComments: 1, wantDispatches: 1, want: []string{"dispatched 120 jobs"}, notWant: []string{"**"},
		},
		{
			name: "a write the dispatcher could not save", login: orgMember, body: "/reschedule some-job build02",
			err:          &api.StatusError{Code: http.StatusInsufficientStorage, Message: "not saved: state dir read-only"},
			wantComments: 1, want: []string{"applied it but could not save it (not saved: state dir read-only)"},
		},
		{name: "a word that only starts like a command is not one", login: orgMember, body: "/dispatcher is down\n/rescheduled it"},
		{name: "a comment without a command", login: orgMember, body: "lgtm"},
		{
			name: "edited comments are ignored", login: orgMember, body: "/dispatch refresh",
			edit: func(ic *github.IssueCommentEvent) { ic.Action = github.IssueCommentActionEdited },
		},
		{
			name: "deleted comments are ignored", login: orgMember, body: "/dispatch refresh",
			edit: func(ic *github.IssueCommentEvent) { ic.Action = github.IssueCommentActionDeleted },
		},
		{
			name: "comments on issues are ignored", login: orgMember, body: "/dispatch",
			edit: func(ic *github.IssueCommentEvent) { ic.Issue.PullRequest = nil },
		},
		{name: "the bot's own comments are ignored", login: testBotName, body: "> /dispatch\n/dispatch"},
		{
			name: "dispatcher failing on /dispatch", login: stranger, body: "/dispatch", err: errFakeFailure,
			wantComments: 1, want: []string{"the dispatcher failed (HTTP 500: fake failure). Nothing was changed; please try again later."},
		},
		{
			name: "dispatcher not ready on /dispatch refresh", login: orgMember, body: "/dispatch refresh",
			err:          &api.StatusError{Code: http.StatusServiceUnavailable, Message: "fake failure"},
			wantComments: 1, want: []string{"the dispatcher is not ready yet (fake failure)"},
		},
		{
			name: "dispatcher refusing the plugin's token on /dispatch refresh", login: orgMember, body: "/dispatch refresh",
			err:          &api.StatusError{Code: http.StatusUnauthorized, Message: "bad token"},
			wantComments: 1, want: []string{"the dispatcher refused this plugin's credentials, so nothing was changed. Please tell the CI operators."},
			notWant: []string{"bad token"},
		},
		{
			name: "dispatcher unreachable on /reschedule", login: orgMember, body: "/reschedule pull-ci-openshift-origin-main-unit", err: errUnreachable,
			wantComments: 1, want: []string{"I could not move `pull-ci-openshift-origin-main-unit` to the best other eligible cluster: the dispatcher could not be reached. Nothing was changed"},
		},
		{
			name: "dispatcher unreachable on /dispatch", login: stranger, body: "/dispatch", err: errUnreachable,
			wantComments: 1, want: []string{"the dispatcher could not be reached."}, notWant: []string{"| Job |"},
		},
		{
			name: "dispatcher past its deadline on /reschedule", login: orgMember, body: "/reschedule some-job build02", err: context.DeadlineExceeded,
			wantComments: 1, want: []string{"I could not move `some-job` to `build02`: the dispatcher did not answer in time. Nothing was changed"},
		},
		{
			name: "network timeout on /dispatch", login: stranger, body: "/dispatch", err: errReadTimeout,
			wantComments: 1, want: []string{"the dispatcher did not answer in time."}, notWant: []string{"| Job |"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFakeDispatcher()
			fake.err = tc.err
			ghc := newFakeGitHub()
			p := newTestPlugin(t, ghc, fake)
			ic := commentEvent(tc.login, tc.body)
			if tc.edit != nil {
				tc.edit(&ic)
			}
			if err := p.HandleIssueComment(context.Background(), testLog(), ic); err != nil {
				t.Fatalf("HandleIssueComment: %v", err)
			}
			if len(ghc.IssueCommentsAdded) != tc.wantComments {
				t.Fatalf("got %d comments, want %d: %q", len(ghc.IssueCommentsAdded), tc.wantComments, ghc.IssueCommentsAdded)
			}
			all := strings.Join(ghc.IssueCommentsAdded, "\n----\n")
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("reply lacks %q; got:\n%s", w, all)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(all, w) {
					t.Errorf("reply has %q; got:\n%s", w, all)
				}
			}
			for _, c := range ghc.IssueCommentsAdded {
				if !strings.HasPrefix(c, "openshift/origin#1234:@"+tc.login+": ") {
					t.Errorf("reply is not on the PR addressed to @%s: %q", tc.login, c)
				}
			}
			_, dispatches, reschedules := fake.snapshot()
			if dispatches != tc.wantDispatches {
				t.Errorf("dispatches = %d, want %d", dispatches, tc.wantDispatches)
			}
			if !reflect.DeepEqual(reschedules, tc.wantReschedules) {
				t.Errorf("reschedule requests = %+v, want %+v", reschedules, tc.wantReschedules)
			}
		})
	}
}

func TestDispatchBaseBranch(t *testing.T) {
	ghc := newFakeGitHub()
	ghc.PullRequests[testPR].Base.Ref = "release-4.18"
	p := newTestPlugin(t, ghc, newFakeDispatcher())
	if err := p.HandleIssueComment(context.Background(), testLog(), commentEvent(stranger, "/dispatch")); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(ghc.IssueCommentsAdded, "\n")
	for _, w := range []string{"2 presubmit(s) of `openshift/origin` could run against `release-4.18`", "`pull-ci-openshift-origin-release-4.18-unit`", "`pull-ci-openshift-origin-any-branch-lint`"} {
		if !strings.Contains(got, w) {
			t.Errorf("reply lacks %q:\n%s", w, got)
		}
	}
	if strings.Contains(got, "main-unit") {
		t.Errorf("reply lists a main-only job:\n%s", got)
	}
}

func TestDispatchNoPresubmits(t *testing.T) {
	ghc := newFakeGitHub()
	p := newTestPlugin(t, ghc, newFakeDispatcher())
	ic := commentEvent(stranger, "/dispatch")
	ic.Repo.Name, ic.Repo.FullName = "installer", "openshift/installer"
	if err := p.HandleIssueComment(context.Background(), testLog(), ic); err != nil {
		t.Fatal(err)
	}
	if len(ghc.IssueCommentsAdded) != 1 || !strings.Contains(ghc.IssueCommentsAdded[0], "no presubmits of `openshift/installer` run against branch `main`") {
		t.Errorf("got %q", ghc.IssueCommentsAdded)
	}
}

// TestCommentTimeout checks that Options.Timeout bounds the handling of a
// comment: a dispatcher that does not answer in time gets a clear reply.
func TestCommentTimeout(t *testing.T) {
	fake := newFakeDispatcher()
	fake.delay = time.Hour // answers only when the call's context ends
	ghc := newFakeGitHub()
	p := newTestPlugin(t, ghc, fake)
	p.opts.Timeout = 50 * time.Millisecond
	if err := p.HandleIssueComment(context.Background(), testLog(), commentEvent(orgMember, "/reschedule pull-ci-openshift-origin-main-unit build02")); err != nil {
		t.Fatal(err)
	}
	if len(ghc.IssueCommentsAdded) != 1 || !strings.Contains(ghc.IssueCommentsAdded[0], "the dispatcher did not answer in time. Nothing was changed") {
		t.Errorf("got %q", ghc.IssueCommentsAdded)
	}
	if _, _, reschedules := fake.snapshot(); len(reschedules) != 0 {
		t.Errorf("a timed-out reschedule was recorded: %+v", reschedules)
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	fake := newFakeDispatcher()
	ghc := newFakeGitHub()
	p := newTestPlugin(t, ghc, fake)
	p.opts.DryRun = true
	if err := p.HandleIssueComment(context.Background(), testLog(), commentEvent(orgMember, "/dispatch refresh\n/reschedule pull-ci-openshift-origin-main-unit build02")); err != nil {
		t.Fatal(err)
	}
	if calls, _, _ := fake.snapshot(); calls != 0 {
		t.Errorf("dry run made %d calls to the dispatcher", calls)
	}
	got := strings.Join(ghc.IssueCommentsAdded, "\n")
	for _, w := range []string{"dry run: I would have asked the dispatcher for a full dispatch now.", "dry run: I would have moved `pull-ci-openshift-origin-main-unit` to `build02` for 72h0m0s."} {
		if !strings.Contains(got, w) {
			t.Errorf("reply lacks %q:\n%s", w, got)
		}
	}
}

// flakyGitHub fails the membership look-ups.
type flakyGitHub struct{ githubClient }

func (flakyGitHub) IsMember(string, string) (bool, error) { return false, errors.New("github down") }
func (flakyGitHub) TeamBySlugHasMember(string, string, string) (bool, error) {
	return false, errors.New("github down")
}

func TestTrusted(t *testing.T) {
	cfg := testConfig(t)
	cases := []struct {
		name    string
		ghc     githubClient
		login   string
		want    bool
		wantErr bool
	}{
		{name: "org member", ghc: newFakeGitHub(), login: orgMember, want: true},
		{name: "team member", ghc: newFakeGitHub(), login: teamMember, want: true},
		{name: "listed user, other case", ghc: newFakeGitHub(), login: "LISTED-user", want: true},
		{name: "stranger", ghc: newFakeGitHub(), login: stranger, want: false},
		{name: "member of an org that is not allowed", ghc: func() githubClient {
			g := newFakeGitHub()
			g.OrgMembers["kubernetes"] = []string{"k8s-person"}
			return g
		}(), login: "k8s-person", want: false},
		{name: "listed user while GitHub is down", ghc: flakyGitHub{newFakeGitHub()}, login: listedUser, want: true},
		{name: "stranger while GitHub is down", ghc: flakyGitHub{newFakeGitHub()}, login: stranger, want: false, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := trusted(tc.ghc, cfg, tc.login)
			if got != tc.want || (err != nil) != tc.wantErr {
				t.Errorf("trusted(%q) = %v, %v; want %v, error %v", tc.login, got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestUntrustedWhileGitHubIsDown(t *testing.T) {
	dispatcher := newFakeDispatcher()
	fake := newFakeGitHub()
	p := newTestPlugin(t, flakyGitHub{fake}, dispatcher)
	if err := p.HandleIssueComment(context.Background(), testLog(), commentEvent(stranger, "/dispatch refresh")); err != nil {
		t.Fatal(err)
	}
	if len(fake.IssueCommentsAdded) != 1 || !strings.Contains(fake.IssueCommentsAdded[0], "I could not check whether you may use this command") {
		t.Errorf("got %q", fake.IssueCommentsAdded)
	}
	if calls, _, _ := dispatcher.snapshot(); calls != 0 {
		t.Errorf("%d calls reached the dispatcher", calls)
	}
}

// TestDispatchBoundedConcurrency checks that /dispatch never has more than
// Concurrency assignment look-ups in flight, and still answers every job.
func TestDispatchBoundedConcurrency(t *testing.T) {
	const jobs, limit = 40, 3
	fake := newFakeDispatcher()
	// Each look-up takes a while, so that unbounded look-ups would overlap.
	fake.delay = 5 * time.Millisecond
	var names []string
	for i := range jobs {
		name := fmt.Sprintf("job-%02d", i)
		names = append(names, name)
		fake.assignments[name] = api.Assignment{Job: name, Cluster: "build0" + name[len(name)-1:], Reason: "balanced"}
	}
	ghc := newFakeGitHub()
	p := newTestPlugin(t, ghc, fake)
	p.opts.Concurrency = limit
	p.opts.Presubmits = func(string, string, string) ([]string, error) { return names, nil }
	if err := p.HandleIssueComment(context.Background(), testLog(), commentEvent(stranger, "/dispatch")); err != nil {
		t.Fatal(err)
	}
	fake.mu.Lock()
	calls, maxInFlight := fake.calls, fake.maxInFlight
	fake.mu.Unlock()
	if maxInFlight > limit {
		t.Errorf("%d look-ups in flight, limit %d", maxInFlight, limit)
	}
	if calls != jobs+1 {
		t.Errorf("%d calls, want %d look-ups and one listing of the clusters (for their drains)", calls, jobs)
	}
	got := ghc.IssueCommentsAdded[0]
	for _, n := range names {
		if want := fmt.Sprintf("| `%s` | `build0%s` | balanced |", n, n[len(n)-1:]); !strings.Contains(got, want) {
			t.Errorf("reply lacks %q", want)
		}
	}
}
