package plugin

import (
	"context"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/prow/pkg/github"
)

// TestPlanRateLimit: /dispatch plan is limited per PR and per user; a
// refusal computes nothing and says when to retry; trusted users are not
// limited; the bucket refills with time.
func TestPlanRateLimit(t *testing.T) {
	ghc := newFakeGitHub()
	ghc.PullRequests[testPR].Head.SHA = headSHA
	pushFile(ghc, DefaultClusterConfigPath, headSHA, "aws: []\n")
	const otherPR = testPR + 1
	ghc.PullRequests[otherPR] = &github.PullRequest{Number: otherPR, Head: github.PullRequestBranch{SHA: headSHA}}
	ghc.PullRequestChanges[otherPR] = ghc.PullRequestChanges[testPR]
	d := newFakeDispatcher()
	p := newTestPlugin(t, ghc, d)
	p.planLimits = newPlanLimiter(PlanLimits{PerPR: Limit{Every: time.Hour, Burst: 2}, PerUser: Limit{Every: time.Hour, Burst: 3}})
	now := time.Date(2026, 12, 6, 20, 0, 0, 0, time.UTC)
	p.planLimits.now = func() time.Time { return now }

	plan := func(login string, pr int) string {
		t.Helper()
		ev := commentEvent(login, "/dispatch plan")
		ev.Issue.Number = pr
		before := len(ghc.IssueComments[pr])
		if err := p.HandleIssueComment(context.Background(), testLog(), ev); err != nil {
			t.Fatal(err)
		}
		for _, c := range ghc.IssueComments[pr][before:] {
			if strings.Contains(c.Body, "asked for too often") {
				return c.Body
			}
		}
		return ""
	}
	for _, step := range []struct {
		login   string
		pr      int
		refused bool
		after   time.Duration // the clock moves on by this first
	}{
		{login: stranger, pr: testPR},
		{login: "someone", pr: testPR},
		{login: "third", pr: testPR, refused: true}, // the PR's 2 are used
		{login: orgMember, pr: testPR},              // trusted: not limited
		{login: stranger, pr: otherPR},
		{login: stranger, pr: otherPR},
		{login: "fourth", pr: otherPR, refused: true}, // the other PR's 2 are used
		{login: stranger, pr: testPR, refused: true, after: 30 * time.Minute},
		{login: stranger, pr: testPR, after: 31 * time.Minute},            // the PR and the user refilled by one
		{login: stranger, pr: otherPR, after: time.Minute, refused: true}, // the user's 3 are used
	} {
		now = now.Add(step.after)
		plans := len(d.plans)
		refusal := plan(step.login, step.pr)
		switch {
		case step.refused && (refusal == "" || len(d.plans) != plans):
			t.Errorf("%s on #%d at %s: plans %d -> %d, refusal %q; want a refusal and no plan", step.login, step.pr, now.Format(time.Kitchen), plans, len(d.plans), refusal)
		case step.refused && !strings.Contains(refusal, "retry `/dispatch plan` in "):
			t.Errorf("refusal %q: want when to retry", refusal)
		case !step.refused && (refusal != "" || len(d.plans) != plans+1):
			t.Errorf("%s on #%d at %s: plans %d -> %d, refusal %q; want a plan", step.login, step.pr, now.Format(time.Kitchen), plans, len(d.plans), refusal)
		}
	}
}
