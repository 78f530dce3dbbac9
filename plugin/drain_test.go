package plugin

import (
	"context"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/api"
)

// TestDrainCommands drives /dispatch drain, cap and undrain, and the drains
// shown by /dispatch and /dispatch refresh, through the fake dispatcher and
// prow's fakegithub.
func TestDrainCommands(t *testing.T) {
	reason := func(r, login string) string { return r + " (@" + login + " in " + testPRURL + ")" }
	drainOf := func(cluster string, req api.DrainRequest) []fakeDrain {
		return []fakeDrain{{Cluster: cluster, Req: req}}
	}
	upgrade := api.DrainRequest{TTL: "4h", Reason: reason("node upgrade", orgMember), By: orgMember}
	arm := api.DrainRequest{TTL: "2h", Reason: reason("arm maintenance", orgMember), By: orgMember}
	with := func(r api.DrainRequest, f func(*api.DrainRequest)) api.DrainRequest { f(&r); return r }
	drained := func(d *fakeDispatcher) {
		d.overrides["build03"] = api.Drain{Cluster: "build03", Reason: "node upgrade", By: "plugin for alice",
			CreatedAt: fakeCreated(), Expires: fakeCreated().Add(4 * time.Hour)}
		d.overrides["build02"] = api.Drain{Cluster: "build02", Capacity: 40, Reason: "half | down", By: "api",
			CreatedAt: fakeCreated(), Expires: fakeCreated().Add(time.Hour)}
	}
	drainsShown := []string{
		"Drains and capacity caps in force:\n\n| Cluster | Capacity | Expires | By | Reason |\n| --- | --- | --- | --- | --- |\n",
		"| `build02` | capped to 40 | 2026-11-22T11:00:00Z | api | half \\| down |\n| `build03` | drained | 2026-11-22T14:00:00Z | plugin for alice | node upgrade |",
	}
	cases := []struct {
		name  string
		login string
		body  string
		fake  func(*fakeDispatcher)
		// dryRun runs the plugin with Options.DryRun.
		dryRun bool

		want, notWant []string
		wantDrains    []fakeDrain
		wantUndrains  []string
		// wantOverrides are the clusters drained or capped afterwards.
		wantOverrides []string
	}{
		{
			name: "drain", login: orgMember, body: "/dispatch drain build03 4h node upgrade",
			want: []string{"drained `build03` until 2026-11-22T14:00:00Z: 1 job(s) moved.", "Reason: " + reason("node upgrade", orgMember),
				"| To cluster | Jobs | Demand |\n| --- | --- | --- |\n| `build02` | 1 | 900 |",
				"- `pull-ci-openshift-origin-main-unit`: `build03` → `build02` (balanced)",
				"Jobs flow back after it expires, or after `/dispatch undrain build03`."},
			notWant:    []string{"stay on", "Forced"},
			wantDrains: drainOf("build03", upgrade), wantOverrides: []string{"build03"},
		},
		{
			name: "drain refused for stranding names the jobs and how to force", login: orgMember, body: "/dispatch drain build01 2h arm maintenance",
			want: []string{"I did not drain `build01`: 2 job(s) need what no other usable cluster has, and the drain would strand them. Nothing was changed.",
				"- `pull-ci-openshift-origin-main-e2e-aws-arm64`: no usable cluster meets capabilities [arm64]\n- `periodic-arm64-nightly`: no usable cluster meets capabilities [arm64]\n",
				"To drain it anyway (those jobs then stay on `build01`), comment:\n\n```\n/dispatch drain build01 2h arm maintenance --force\n```"},
			wantDrains: drainOf("build01", arm),
		},
		{
			name: "forced drain lists the jobs that stay", login: orgMember, body: "/dispatch drain build01 2h arm maintenance --force",
			want: []string{"drained `build01` until 2026-11-22T12:00:00Z: 1 job(s) moved.",
				"2 job(s) stay on `build01`:\n- `pull-ci-openshift-origin-main-e2e-aws-arm64`: capability: unplaceable: no usable cluster meets capabilities [arm64]\n",
				"Forced: 2 of them need what no other usable cluster has, and stay stranded on `build01`."},
			wantDrains:    drainOf("build01", with(arm, func(r *api.DrainRequest) { r.Force = true })),
			wantOverrides: []string{"build01"},
		},
		{
			name: "preview changes nothing and says the drain would need force", login: orgMember, body: "/dispatch drain build01 2h arm maintenance --dry-run",
			want: []string{"dry run, nothing was changed: to drain `build01` for 2h would move 1 job(s).", "| `build02` | 1 | 900 |",
				"2 job(s) need what no other usable cluster has, so the drain would be refused unless forced (`--force`); forced, they stay on `build01`:"},
			notWant:    []string{"Jobs flow back", "drained `build01`"},
			wantDrains: drainOf("build01", with(arm, func(r *api.DrainRequest) { r.DryRun = true })),
		},
		{
			name: "flags in either order, any case", login: orgMember, body: "/dispatch drain build01 2h arm maintenance --DRY-RUN --force",
			want:       []string{"dry run, nothing was changed"},
			wantDrains: drainOf("build01", with(arm, func(r *api.DrainRequest) { r.DryRun, r.Force = true, true })),
		},
		{
			name: "cap", login: teamMember, body: "/dispatch cap build02 40 90m half the nodes are down",
			want:          []string{"capped `build02` to capacity 40 until 2026-11-22T11:30:00Z: 1 job(s) moved.", "Reason: " + reason("half the nodes are down", teamMember)},
			wantDrains:    drainOf("build02", api.DrainRequest{Capacity: 40, TTL: "90m", Reason: reason("half the nodes are down", teamMember), By: teamMember}),
			wantOverrides: []string{"build02"},
		},
		{
			name: "cap preview", login: listedUser, body: "/dispatch cap build02 40 90m half down --dry-run",
			want:       []string{"dry run, nothing was changed: to cap `build02` to capacity 40 for 90m would move 1 job(s)."},
			wantDrains: drainOf("build02", api.DrainRequest{Capacity: 40, TTL: "90m", Reason: reason("half down", listedUser), By: listedUser, DryRun: true}),
		},
		{
			name: "drain with a ttl over the maximum", login: orgMember, body: "/dispatch drain build03 200h node upgrade",
			want:       []string{"I could not drain `build03`: the dispatcher refused the request: drain build03: ttl 200h0m0s is over the maximum 168h0m0s: invalid. Nothing was changed."},
			wantDrains: drainOf("build03", with(upgrade, func(r *api.DrainRequest) { r.TTL = "200h" })),
		},
		{
			name: "drain with a ttl that is no duration", login: orgMember, body: "/dispatch drain build03 4hours node upgrade",
			want:       []string{"I could not drain `build03`: the dispatcher refused the request: ttl \"4hours\": want a positive duration"},
			wantDrains: drainOf("build03", with(upgrade, func(r *api.DrainRequest) { r.TTL = "4hours" })),
		},
		{
			name: "drain of an unknown cluster", login: orgMember, body: "/dispatch drain build99 4h node upgrade",
			want:       []string{"I could not drain `build99`: the dispatcher does not know that: drain: cluster \"build99\" is not in the cluster config. Nothing was changed."},
			wantDrains: drainOf("build99", upgrade),
		},
		{
			name: "a drain the dispatcher could not save", login: orgMember, body: "/dispatch drain build03 4h node upgrade",
			fake: func(d *fakeDispatcher) {
				d.err = &api.StatusError{Code: http.StatusInsufficientStorage, Message: "drain build03: in force, but not saved: read-only"}
			},
			want: []string{"I could not drain `build03`: the dispatcher applied it but could not save it (drain build03: in force, but not saved: read-only)"},
		},
		{name: "drain by a stranger is refused", login: stranger, body: "/dispatch drain build03 4h node upgrade",
			want: []string{"sorry, only", "may use `/dispatch drain`. Nothing was changed."}},
		{name: "a preview by a stranger is refused too", login: stranger, body: "/dispatch drain build03 4h node upgrade --dry-run",
			want: []string{"may use `/dispatch drain`. Nothing was changed."}},
		{name: "cap by a stranger is refused", login: stranger, body: "/dispatch cap build03 50 4h node upgrade",
			want: []string{"may use `/dispatch cap`. Nothing was changed."}},
		{name: "undrain by a stranger is refused", login: stranger, body: "/dispatch undrain build03", fake: drained,
			want: []string{"may use `/dispatch undrain`. Nothing was changed."}, wantOverrides: []string{"build02", "build03"}},

		{name: "drain without a reason", login: orgMember, body: "/dispatch drain build03 4h",
			want: []string{"I did not understand that. Usage: `" + drainUsage + "`: the TTL is a duration such as `4h`, the reason is required"}},
		{name: "drain without a ttl", login: orgMember, body: "/dispatch drain build03 node upgrade", want: []string{"Usage: `" + drainUsage + "`"}},
		{name: "drain with only a flag for a reason", login: orgMember, body: "/dispatch drain build03 4h --force", want: []string{"Usage: `" + drainUsage + "`"}},
		{name: "drain with a flag before the reason", login: orgMember, body: "/dispatch drain build03 4h --dry-run node upgrade", want: []string{"Usage: `" + drainUsage + "`"}},
		{name: "drain with a mistyped flag is not applied", login: orgMember, body: "/dispatch drain build03 4h node upgrade --dryrun", want: []string{"Usage: `" + drainUsage + "`"}},
		{name: "cap of 0", login: orgMember, body: "/dispatch cap build03 0 4h node upgrade", want: []string{"Usage: `" + capUsage + "`: the capacity is 1 to 100 (to drain, use `/dispatch drain`)"}},
		{name: "cap over 100", login: orgMember, body: "/dispatch cap build03 101 4h node upgrade", want: []string{"Usage: `" + capUsage + "`"}},
		{name: "cap without a capacity", login: orgMember, body: "/dispatch cap build03 4h node upgrade", want: []string{"Usage: `" + capUsage + "`"}},
		{name: "cap with --force", login: orgMember, body: "/dispatch cap build03 50 4h node upgrade --force", want: []string{"Usage: `" + capUsage + "`"}},
		{name: "undrain without a cluster", login: orgMember, body: "/dispatch undrain", want: []string{"Usage: `" + undrainUsage + "`."}},
		{name: "undrain of two clusters", login: orgMember, body: "/dispatch undrain build02 build03", want: []string{"Usage: `" + undrainUsage + "`."}},
		{name: "an unknown /dispatch form lists every form", login: orgMember, body: "/dispatch drain-preview build03 4h",
			want: []string{"Usage: `/dispatch [refresh|plan]`, `" + drainUsage + "`, `" + capUsage + "` or `" + undrainUsage + "`."}},

		{
			name: "undrain", login: orgMember, body: "/dispatch undrain build03", fake: drained,
			want: []string{"cancelled the drain (node upgrade, by plugin for alice) of `build03`. The dispatch that followed moved 1 job(s), within the move budget",
				"| Cluster | Jobs moved in |\n| --- | --- |\n| `build03` | 1 |"},
			wantUndrains: []string{"build03 " + orgMember}, wantOverrides: []string{"build02"},
		},
		{
			name: "undrain of a cap", login: orgMember, body: "/dispatch undrain build02", fake: drained,
			want:         []string{"cancelled the capacity cap (40) (half | down, by api) of `build02`."},
			wantUndrains: []string{"build02 " + orgMember}, wantOverrides: []string{"build03"},
		},
		{
			name: "undrain of a cluster without a drain", login: orgMember, body: "/dispatch undrain build03",
			want:         []string{"I could not cancel the drain or cap of `build03`: the dispatcher does not know that: undrain: cluster \"build03\" has no drain or capacity cap: not found. Nothing was changed."},
			wantUndrains: []string{"build03 " + orgMember},
		},

		{name: "/dispatch shows the drains and caps in force", login: stranger, body: "/dispatch", fake: drained,
			want: append([]string{"3 presubmit(s)"}, drainsShown...), wantOverrides: []string{"build02", "build03"}},
		{name: "/dispatch shows the unhealthy clusters with the numbers and the action", login: stranger, body: "/dispatch",
			fake: func(d *fakeDispatcher) {
				d.health = map[string]api.ClusterHealth{
					"build03": {State: "unhealthy", Since: fakeCreated(), Mode: "report", Reason: "error share 42.0% of 57 finished jobs", Action: "would drain for 6h0m0s (report mode)"},
					"build02": {State: "healthy", Since: fakeCreated(), Mode: "report", Reason: "error share 0.0% of 80 finished jobs"},
				}
			},
			want:    []string{"3 presubmit(s)", "Unhealthy clusters:", "| `build03` | 2026-11-22T10:00:00Z | report | error share 42.0% of 57 finished jobs | would drain for 6h0m0s (report mode) |"},
			notWant: []string{"`build02` | 2026-11-22T10:00:00Z", "Drains and capacity caps"}},
		{name: "/dispatch without drains shows none", login: stranger, body: "/dispatch", want: []string{"3 presubmit(s)"}, notWant: []string{"Drains and capacity caps", "Unhealthy clusters"}},
		{name: "/dispatch refresh shows the drains and caps in force", login: orgMember, body: "/dispatch refresh", fake: drained,
			want: append([]string{"dispatched 120 jobs"}, drainsShown...), wantOverrides: []string{"build02", "build03"}},
		{name: "/dispatch when the clusters cannot be listed keeps its table", login: stranger, body: "/dispatch",
			fake: func(d *fakeDispatcher) { d.clustersErr = errFakeFailure },
			want: []string{"3 presubmit(s)", "_I could not list the drains and caps in force (the dispatcher failed (HTTP 500: fake failure)"}},

		{name: "the plugin's dry run applies no drain", login: orgMember, body: "/dispatch drain build03 4h node upgrade", dryRun: true,
			want: []string{"dry run: I would have asked the dispatcher to drain `build03` for 4h (node upgrade)."}},
		{name: "the plugin's dry run cancels no drain", login: orgMember, body: "/dispatch undrain build03", dryRun: true, fake: drained,
			want: []string{"dry run: I would have cancelled the drain or cap of `build03`."}, wantOverrides: []string{"build02", "build03"}},
		{name: "the plugin's dry run still previews: that changes nothing", login: orgMember, body: "/dispatch drain build03 4h node upgrade --dry-run", dryRun: true,
			want:       []string{"dry run, nothing was changed: to drain `build03` for 4h would move 1 job(s)."},
			wantDrains: drainOf("build03", with(upgrade, func(r *api.DrainRequest) { r.DryRun = true }))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFakeDispatcher()
			if tc.fake != nil {
				tc.fake(fake)
			}
			ghc := newFakeGitHub()
			p := newTestPlugin(t, ghc, fake)
			p.opts.DryRun = tc.dryRun
			if err := p.HandleIssueComment(context.Background(), testLog(), commentEvent(tc.login, tc.body)); err != nil {
				t.Fatalf("HandleIssueComment: %v", err)
			}
			if len(ghc.IssueCommentsAdded) != 1 {
				t.Fatalf("got %d comments, want 1: %q", len(ghc.IssueCommentsAdded), ghc.IssueCommentsAdded)
			}
			got := ghc.IssueCommentsAdded[0]
			if !strings.HasPrefix(got, "openshift/origin#1234:@"+tc.login+": ") {
				t.Errorf("reply is not on the PR addressed to @%s: %q", tc.login, got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("reply lacks %q; got:\n%s", w, got)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(got, w) {
					t.Errorf("reply has %q; got:\n%s", w, got)
				}
			}
			drains, undrains := fake.changes()
			if !reflect.DeepEqual(drains, tc.wantDrains) {
				t.Errorf("drains = %+v, want %+v", drains, tc.wantDrains)
			}
			if !reflect.DeepEqual(undrains, tc.wantUndrains) {
				t.Errorf("undrains = %v, want %v", undrains, tc.wantUndrains)
			}
			fake.mu.Lock()
			var overrides []string
			for _, c := range []string{"build01", "build02", "build03"} {
				if _, ok := fake.overrides[c]; ok {
					overrides = append(overrides, c)
				}
			}
			fake.mu.Unlock()
			if !reflect.DeepEqual(overrides, tc.wantOverrides) {
				t.Errorf("drained or capped afterwards: %v, want %v", overrides, tc.wantOverrides)
			}
		})
	}
}

// TestDrainAndDispatchInOneComment: a drain and the table in one comment
// get one reply, and the table shows the drain just applied.
func TestDrainAndDispatchInOneComment(t *testing.T) {
	fake := newFakeDispatcher()
	ghc := newFakeGitHub()
	p := newTestPlugin(t, ghc, fake)
	if err := p.HandleIssueComment(context.Background(), testLog(), commentEvent(orgMember, "/dispatch drain build03 4h node upgrade\n/dispatch")); err != nil {
		t.Fatal(err)
	}
	if len(ghc.IssueCommentsAdded) != 1 {
		t.Fatalf("got %d comments, want 1", len(ghc.IssueCommentsAdded))
	}
	got := ghc.IssueCommentsAdded[0]
	for _, w := range []string{"**`/dispatch drain build03 4h node upgrade`**: drained `build03`", "**`/dispatch`**: 3 presubmit(s)",
		"| `build03` | drained | 2026-11-22T14:00:00Z | plugin for org-member | node upgrade (@org-member in " + testPRURL + ") |"} {
		if !strings.Contains(got, w) {
			t.Errorf("reply lacks %q; got:\n%s", w, got)
		}
	}
}

// TestHelpExamplesParse: every example on Prow's /help page is a command
// the plugin understands, not one that gets a usage reply.
func TestHelpExamplesParse(t *testing.T) {
	p := newTestPlugin(t, newFakeGitHub(), newFakeDispatcher())
	help, err := p.HelpProvider(nil)
	if err != nil {
		t.Fatal(err)
	}
	usage := map[commandKind]bool{cmdDispatchUsage: true, cmdRescheduleUsage: true, cmdDrainUsage: true, cmdCapUsage: true, cmdUndrainUsage: true}
	for _, c := range help.Commands {
		for _, ex := range c.Examples {
			cmds := parseCommands(ex)
			if len(cmds) != 1 || usage[cmds[0].kind] {
				t.Errorf("help example %q parses to %+v", ex, cmds)
			}
		}
	}
}
