package httpapi

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/health"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// statusFake is a fake holding three clusters (one over target, one
// drained, one capped and blocked), a job override and a dispatch status.
func statusFake() *fakeBackend {
	f := newFakeBackend()
	expires := time.Date(2026, 11, 23, 8, 30, 0, 0, time.UTC)
	moves := 7
	f.status = dispatch.Status{Ready: true, TableSize: 2, LastDispatch: time.Date(2026, 11, 22, 9, 15, 0, 0, time.UTC), LastDispatchMoves: &moves, Unplaceable: 1,
		UnplaceableJobs: []engine.Unplaceable{{Job: "periodic-gpu", Problem: "capability gpu: no usable cluster"}}}
	f.clusters = []dispatch.ClusterStatus{
		{ClusterLoad: engine.ClusterLoad{Name: "build01", Role: "build", Provider: "aws", Capacity: 100, ConfiguredCapacity: 100, Jobs: 40, Demand: 50,
			BalancedJobs: 30, BalancedDemand: 35, ForcedJobs: 10, ForcedDemand: 15, Target: 40, Ratio: 1.25}},
		{ClusterLoad: engine.ClusterLoad{Name: "build02", Role: "build", Provider: "gcp", Capacity: 0, ConfiguredCapacity: 60, Jobs: 3, Target: 0,
			Override: &table.Drain{Cluster: "build02", Reason: "etcd defrag", By: "alice", Expires: expires}}},
		{ClusterLoad: engine.ClusterLoad{Name: "build05", Role: "build", Provider: "aws", Capacity: 30, ConfiguredCapacity: 80, Jobs: 10, Demand: 12, BalancedDemand: 12, Target: 24, Ratio: 0.5, Blocked: true,
			Override: &table.Drain{Cluster: "build05", Capacity: 30, Reason: "half the nodes", By: "bob", Expires: expires}}},
		{ClusterLoad: engine.ClusterLoad{Name: "app.ci", Role: "service", Jobs: 2}},
	}
	f.overrides = []table.Override{{Job: unitJob, Cluster: "build05", Reason: "flaky on build01", By: "carol", Expires: expires}}
	f.rows[unitJob] = table.Assignment{Job: unitJob, Cluster: "build01", Reason: table.ReasonBalanced, Detail: "lowest load of 3", File: "openshift/origin/origin-main.yaml"}
	return f
}

// rowOf returns the HTML of the clusters table row of cluster.
func rowOf(t *testing.T, page, cluster string) string {
	t.Helper()
	m := regexp.MustCompile(`(?s)<tr class="cluster[^"]*" data-cluster="` + regexp.QuoteMeta(cluster) + `">.*?</tr>`).FindString(page)
	if m == "" {
		t.Fatalf("no row for cluster %s in:\n%s", cluster, page)
	}
	return m
}

func TestStatusPage(t *testing.T) {
	for _, tc := range []struct {
		name    string
		path    string
		code    int
		want    []string          // substrings of the page
		notWant []string          // substrings the page must not hold
		rows    map[string]string // cluster -> a substring of its row
		rowsNot map[string]string // cluster -> a substring its row must not hold
		fake    func(*fakeBackend)
	}{{
		name: "clusters with their bars and states",
		path: "/", code: http.StatusOK,
		want: []string{
			`<b id="table-size">2</b>`, `<b id="last-dispatch">2026-11-22 09:15:00 UTC</b>`, `<b id="last-moves">7</b> moved`,
			`<b id="unplaceable">1</b>`, "periodic-gpu", "capability gpu: no usable cluster",
			// the job override
			"<td>" + unitJob + "</td><td>build05</td><td>2026-11-23 08:30:00 UTC</td><td>carol</td><td>flaky on build01</td>",
		},
		notWant: []string{`id="result"`, `id="not-found"`},
		rows: map[string]string{
			"build01": `style="width: 100%"`,
			"build02": `<span class="state-drained">drained</span> (capacity 60 configured) until 2026-11-23 08:30:00 UTC by alice: etcd defrag`,
			"build05": `<span class="state-blocked">blocked</span> <span class="state-capped">capped to 30</span> until 2026-11-23 08:30:00 UTC by bob: half the nodes`,
			"app.ci":  `no target`,
		},
	}, {
		name: "bar widths and over target: the whole load, with its balanced and forced parts",
		path: "/", code: http.StatusOK,
		rows: map[string]string{
			"build01": `50.0 / 40.0 (125 %)</span></td>
<td class="num balanced">35.0</td>
<td class="num forced">15.0</td>`,
			"build05": `style="width: 50%"`,
			"build02": `style="width: 0%"`,
		},
		want: []string{`<tr class="cluster over" data-cluster="build01">`, `<tr class="cluster" data-cluster="build05">`},
	}, {
		name: "no dispatch yet, not ready",
		path: "/", code: http.StatusOK,
		fake: func(f *fakeBackend) {
			f.status = dispatch.Status{Reason: "no assignment table yet"}
			f.clusters, f.overrides = nil, nil
		},
		want:    []string{`<b id="last-dispatch">never</b>`, "not ready: no assignment table yet", "no clusters", "<p class=\"muted\">none</p>"},
		notWant: []string{`id="last-moves"`},
	}, {
		name: "known job",
		path: "/?job=" + unitJob, code: http.StatusOK,
		want: []string{
			`value="` + unitJob + `"`,
			`<td id="result-cluster">build01</td>`, `<td id="result-reason">balanced</td>`,
			`<td id="result-detail">lowest load of 3</td>`, `<td id="result-file">openshift/origin/origin-main.yaml</td>`,
			"override to <b>build05</b> until 2026-11-23 08:30:00 UTC by carol: flaky on build01",
			"<tr><td>balanced</td><td><b>yes</b></td><td>fake</td></tr>",
		},
		notWant: []string{`id="not-found"`},
	}, {
		name: "known job, explain fails",
		path: "/?job=" + armJob, code: http.StatusOK,
		fake: func(f *fakeBackend) { f.explainErr = dispatch.ErrNotReady },
		want: []string{`<td id="result-cluster">build05</td>`, `<p class="error">explain: `},
	}, {
		name: "unknown job",
		path: "/?job=no-such-job", code: http.StatusNotFound,
		want:    []string{`<p class="notfound" id="not-found">Job <b>no-such-job</b> is not in the assignment table, and no job name contains it.</p>`, `data-cluster="build01"`},
		notWant: []string{`id="result-cluster"`, `id="matches"`},
	}, {
		name: "part of a name lists the jobs containing it, bounded",
		path: "/?job=origin-main", code: http.StatusOK,
		fake: func(f *fakeBackend) {
			for i := range maxSearchMatches + 5 {
				job := fmt.Sprintf("pull-ci-openshift-origin-main-e2e-%03d", i)
				f.rows[job] = table.Assignment{Job: job, Cluster: "build01"}
			}
		},
		want: []string{
			`<ul id="matches">`, `<a href="/?job=pull-ci-openshift-origin-main-e2e-000">pull-ci-openshift-origin-main-e2e-000</a>`,
			// the fake's own two origin-main jobs and the 55 added
			fmt.Sprintf(`%d jobs contain <b>origin-main</b> (the first %d, those starting with it first)`, maxSearchMatches+7, maxSearchMatches),
		},
		notWant: []string{`id="not-found"`, `id="result-cluster"`, "pull-ci-openshift-origin-main-e2e-054"},
	}, {
		name: "the whole name shows the job and the other jobs containing it",
		path: "/?job=" + unitJob, code: http.StatusOK,
		fake: func(f *fakeBackend) { f.rows[unitJob+"-2"] = table.Assignment{Job: unitJob + "-2", Cluster: "build05"} },
		want: []string{`<td id="result-cluster">build01</td>`, `2 jobs contain`, `<a href="/?job=` + unitJob + `-2">`},
	}, {
		name: "refreshes itself, shows health numbers, moves and configured capacity",
		path: "/", code: http.StatusOK,
		fake: func(f *fakeBackend) {
			f.status.LastMoves = []engine.Move{{Job: "job-a", From: "build02", To: "build01", Reason: table.ReasonBalanced}}
			f.clusters[0].Health = &health.Status{ClusterState: health.ClusterState{State: health.Healthy, Since: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC),
				Sample: &health.Sample{ErrorShare: 0.021, Samples: 120, PendingSeconds: 95}}}
		},
		want: []string{
			`<meta http-equiv="refresh" content="60">`,
			"<tr><td>job-a</td><td>build02</td><td>build01</td><td>balanced</td></tr>", `<p class="muted" id="more-moves">and 6 more</p>`,
		},
		rows: map[string]string{
			"build01": `<span class="health-healthy">healthy</span> since 2026-11-22 10:00:00 UTC: errors 2.1 % of 120 finished, pending 1m35s`,
			"build02": `0 <span class="muted configured">of 60 configured</span>`,
			"build05": `30 <span class="muted configured">of 80 configured</span>`,
			"app.ci":  `<span class="muted">not evaluated</span>`,
		},
		rowsNot: map[string]string{"build01": "configured"},
	}, {
		name: "hostile job name is escaped",
		path: "/?job=%3Cscript%3Ealert(1)%3C%2Fscript%3E%22", code: http.StatusNotFound,
		want:    []string{"&lt;script&gt;alert(1)&lt;/script&gt;&#34;"},
		notWant: []string{"<script>"},
	}, {
		name: "an unhealthy cluster shows its state, numbers and action; a healthy one stays ok",
		path: "/", code: http.StatusOK,
		fake: func(f *fakeBackend) {
			since := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
			f.clusters[0].Health = &health.Status{ClusterState: health.ClusterState{State: health.Unhealthy, Since: since,
				Reason: "error share 42.0% of 57 finished jobs: error share at or above 30.0%"}, Mode: health.ModeReport, Action: "would drain for 6h0m0s, moving 3 job(s) (report mode)"}
			f.clusters[3].Health = &health.Status{ClusterState: health.ClusterState{State: health.Healthy, Since: since}, Mode: health.ModeReport}
		},
		rows: map[string]string{
			"build01": `<span class="state-unhealthy">unhealthy</span> since 2026-11-22 10:00:00 UTC (report mode): error share 42.0% of 57 finished jobs: error share at or above 30.0%; would drain for 6h0m0s, moving 3 job(s) (report mode)`,
			"app.ci":  `<span class="muted">ok</span>`,
		},
		rowsNot: map[string]string{"build01": `<span class="muted">ok</span>`},
	}, {
		name: "hostile cluster override reason is escaped",
		path: "/", code: http.StatusOK,
		fake: func(f *fakeBackend) {
			f.clusters[1].Override.Reason = `<img src=x onerror=alert(1)>`
			f.clusters[1].Name = `b"><script>`
		},
		want:    []string{"&lt;img src=x onerror=alert(1)&gt;", `data-cluster="b&#34;&gt;&lt;script&gt;"`},
		notWant: []string{"<img", "<script>"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			f := statusFake()
			if tc.fake != nil {
				tc.fake(f)
			}
			srv := startAPI(t, f)
			code, page := call(t, http.MethodGet, srv.URL+tc.path, "", "")
			if code != tc.code {
				t.Errorf("status %d, want %d", code, tc.code)
			}
			for _, w := range tc.want {
				if !strings.Contains(page, w) {
					t.Errorf("page lacks %q:\n%s", w, page)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(page, w) {
					t.Errorf("page holds %q:\n%s", w, page)
				}
			}
			for cluster, w := range tc.rows {
				if row := rowOf(t, page, cluster); !strings.Contains(row, w) {
					t.Errorf("row of %s lacks %q:\n%s", cluster, w, row)
				}
			}
			for cluster, w := range tc.rowsNot {
				if row := rowOf(t, page, cluster); strings.Contains(row, w) {
					t.Errorf("row of %s holds %q:\n%s", cluster, w, row)
				}
			}
			if tc.fake == nil { // every cluster of the fake has its row and a bar
				for _, c := range f.clusters {
					if row := rowOf(t, page, c.Name); !strings.Contains(row, `<div class="bar"`) {
						t.Errorf("row of %s has no bar:\n%s", c.Name, row)
					}
				}
			}
		})
	}
}

func TestStatusPageMethodsAndPaths(t *testing.T) {
	srv := startAPI(t, statusFake())
	for _, tc := range []struct {
		method, path string
		code         int
		html         bool
	}{
		{http.MethodGet, "/", http.StatusOK, true},
		{http.MethodHead, "/", http.StatusOK, true},
		{http.MethodHead, "/?job=no-such-job", http.StatusNotFound, true},
		{http.MethodPost, "/", http.StatusMethodNotAllowed, false},
		{http.MethodDelete, "/", http.StatusMethodNotAllowed, false},
		{http.MethodGet, "/nothing-here", http.StatusNotFound, false},
		{http.MethodGet, "/api/v1/clusters", http.StatusOK, false},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.code)
			}
			isHTML := resp.Header.Get("Content-Type") == "text/html; charset=utf-8"
			if isHTML != tc.html {
				t.Errorf("Content-Type %q, want HTML: %v", resp.Header.Get("Content-Type"), tc.html)
			}
			if tc.html && !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
				t.Errorf("Content-Security-Policy %q lacks default-src 'none'", resp.Header.Get("Content-Security-Policy"))
			}
		})
	}
}

func TestNewClusterRow(t *testing.T) {
	for _, tc := range []struct {
		name  string
		load  dispatch.ClusterStatus
		width int
		over  bool
	}{
		{"on target", dispatch.ClusterStatus{ClusterLoad: engine.ClusterLoad{Target: 10, Ratio: 1}}, 100, false},
		{"within 5 %", dispatch.ClusterStatus{ClusterLoad: engine.ClusterLoad{Target: 10, Ratio: 1.04}}, 100, false},
		{"over, capped", dispatch.ClusterStatus{ClusterLoad: engine.ClusterLoad{Target: 10, Ratio: 3}}, 100, true},
		{"under", dispatch.ClusterStatus{ClusterLoad: engine.ClusterLoad{Target: 10, Ratio: 0.333}}, 33, false},
		{"no target", dispatch.ClusterStatus{ClusterLoad: engine.ClusterLoad{Ratio: 0}}, 0, false},
		{"negative", dispatch.ClusterStatus{ClusterLoad: engine.ClusterLoad{Target: 10, Ratio: -1}}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			row := newClusterRow(tc.load)
			if row.BarWidth != tc.width || row.Over != tc.over {
				t.Errorf("width %d over %v, want %d %v", row.BarWidth, row.Over, tc.width, tc.over)
			}
		})
	}
}

// TestStatusPageShowsTheReplica: a highly available dispatcher's page says
// which replica answered and which leads, and a replica still loading its
// job config says so.
func TestStatusPageShowsTheReplica(t *testing.T) {
	for _, tc := range []struct {
		name    string
		leader  *fixedLeader
		loading bool
		want    string
		notWant string
	}{
		{name: "one replica", want: `<b id="table-size">`, notWant: `id="replica"`},
		{name: "follower", leader: &fixedLeader{name: "r1", addr: "http://r1:8080", self: "r2"}, want: `replica <b>r2</b>, follower of <b>r1</b>`},
		{name: "leader", leader: &fixedLeader{name: "r2", addr: "http://r2:8080", self: "r2"}, want: `replica <b>r2</b>, <b>leader</b>`},
		{name: "no leader yet", leader: &fixedLeader{self: "r3"}, want: `follower of <b>no leader yet</b>`},
		{name: "loading", loading: true, want: `id="loading">loading the configs and the job config`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := statusFake()
			f.status.Loading = tc.loading
			api := &API{Backend: f, Log: logr.Discard()}
			if tc.leader != nil {
				api.Leader = tc.leader
			}
			srv := httptest.NewServer(api.Handler())
			defer srv.Close()
			code, page := call(t, http.MethodGet, srv.URL+"/", "", "")
			if code != http.StatusOK || !strings.Contains(page, tc.want) {
				t.Errorf("HTTP %d, page lacks %q:\n%s", code, tc.want, page)
			}
			if tc.notWant != "" && strings.Contains(page, tc.notWant) {
				t.Errorf("page holds %q", tc.notWant)
			}
		})
	}
}
