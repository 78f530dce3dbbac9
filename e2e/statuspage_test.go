package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"sigs.k8s.io/yaml"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/api"
)

// TestStatusPage opens the status page in headless Chromium: every cluster
// of the cluster config is listed with its load bar, and a job searched
// through the page's form (a real form submit) shows the cluster and reason
// the API gives for it.
func TestStatusPage(t *testing.T) {
	chromium := requireChromium(t)
	sc := newScenario(t, "statuspage", scenarioOptions{})
	browser := newBrowser(t, chromium, sc.dir)

	resp, err := chromedp.RunResponse(browser, chromedp.Navigate(sc.d.APIURL+"/"))
	if err != nil {
		t.Fatalf("opening %s/: %v; dispatcher log:\n%s", sc.d.APIURL, err, sc.d.LogTail(2000))
	}
	if resp.Status != 200 {
		t.Errorf("GET / answered %d in the browser, want 200", resp.Status)
	}
	if size := pageText(t, browser, "#table-size"); size == "" || size == "0" {
		t.Errorf("table size %q on the page, want the table's rows", size)
	}
	if moves := pageText(t, browser, "#last-moves"); moves != "0" { // the first dispatch moves nothing
		t.Errorf("moves of the last dispatch %q on the page, want 0", moves)
	}
	rows, err := chromedp.Run(browser, chromedp.Nodes(chromedp.CSSAll("#clusters tr.cluster")))
	if err != nil {
		t.Fatalf("reading the clusters table: %v", err)
	}
	listed := map[string]bool{}
	for _, n := range rows {
		listed[n.AttributeValue("data-cluster")] = true
	}
	for _, name := range configClusters(t, sc.config.clusters) {
		if !listed[name] {
			t.Errorf("cluster %s of the cluster config is not listed on the page (listed: %v)", name, listed)
			continue
		}
		bars, err := chromedp.Run(browser, chromedp.Nodes(chromedp.CSSAll(`#clusters tr[data-cluster="`+name+`"] .bar .fill`), chromedp.AtLeast(0)))
		if err != nil {
			t.Fatalf("finding the bar of %s: %v", name, err)
		}
		if len(bars) != 1 || !strings.Contains(bars[0].AttributeValue("style"), "width:") {
			t.Errorf("cluster %s: want one bar with a width, got %d", name, len(bars))
		}
	}
	if state := pageText(t, browser, `#clusters tr[data-cluster="`+clusterBlocked+`"] td.state`); !strings.Contains(state, "blocked") {
		t.Errorf("state of %s is %q, want it shown blocked", clusterBlocked, state)
	}

	for _, job := range []string{jobOriginUnit, jobOriginARM64} {
		want := sc.assignment(job)
		resp := search(t, browser, job)
		if resp.Status != 200 || !strings.Contains(resp.URL, "job="+job) {
			t.Errorf("searching %s: %d from %s, want 200 from ?job=%s", job, resp.Status, resp.URL, job)
		}
		cluster, reason := pageText(t, browser, "#result-cluster"), pageText(t, browser, "#result-reason")
		if cluster != want.Cluster || reason != want.Reason {
			t.Errorf("%s: the page shows cluster %q reason %q; GET /api/v1/assignments/%s says %q %q", job, cluster, reason, job, want.Cluster, want.Reason)
		}
		steps, err := chromedp.Run(browser, chromedp.Nodes(chromedp.CSSAll("#steps td"), chromedp.AtLeast(0)))
		if err != nil {
			t.Fatal(err)
		}
		if len(steps) == 0 {
			t.Errorf("%s: the page shows no explanation steps", job)
		}
	}

	if resp := search(t, browser, "no-such-job"); resp.Status != 404 {
		t.Errorf("searching an unknown job answered %d, want 404", resp.Status)
	}
	if msg := pageText(t, browser, "#not-found"); !strings.Contains(msg, "no-such-job") || !strings.Contains(msg, "not in the assignment table") {
		t.Errorf("unknown job: the page says %q", msg)
	}

	// It refreshes itself without JavaScript.
	refresh, err := chromedp.Run(browser, chromedp.Nodes(chromedp.CSS(`meta[http-equiv="refresh"]`)))
	if err != nil || len(refresh) != 1 || refresh[0].AttributeValue("content") == "" {
		t.Errorf("no meta refresh on the page: %v", err)
	}
	// Every cluster shows its health (none evaluated here: health is off).
	for _, name := range configClusters(t, sc.config.clusters) {
		if h := pageText(t, browser, `#clusters tr[data-cluster="`+name+`"] td.health`); h == "" {
			t.Errorf("cluster %s shows no health", name)
		}
	}

	// Part of a name lists the jobs that contain it, those starting with
	// it first; a click on one shows it.
	resp = search(t, browser, "origin-main")
	if resp.Status != 200 {
		t.Errorf("searching part of a name answered %d, want 200", resp.Status)
	}
	matches, err := chromedp.Run(browser, chromedp.Nodes(chromedp.CSSAll("#matches li a"), chromedp.AtLeast(0)))
	if err != nil {
		t.Fatal(err)
	}
	if len(matches) < 2 || len(matches) > 50 {
		t.Fatalf("searching origin-main listed %d jobs, want several, at most 50", len(matches))
	}
	var names []string
	for _, m := range matches {
		names = append(names, m.AttributeValue("href"))
	}
	if !slices.Contains(names, "/?job="+jobOriginUnit) {
		t.Errorf("searching origin-main does not list %s: %q", jobOriginUnit, names)
	}
	resp, err = chromedp.RunResponse(browser, chromedp.Click(chromedp.CSS(`#matches a[href="/?job=`+jobOriginUnit+`"]`)))
	if err != nil || resp.Status != 200 {
		t.Fatalf("following the match %s: %v %v", jobOriginUnit, resp, err)
	}
	if got := pageText(t, browser, "#result-job"); got != jobOriginUnit {
		t.Errorf("the match link shows %q, want %s", got, jobOriginUnit)
	}

	// A dispatch that moves jobs lists its moves; a drained cluster shows
	// its configured capacity beside the drain.
	blocked := blockBalancedCluster(sc)
	drained := map[string]string{"build02": "build03", "build03": "build02"}[blocked]
	if _, err := sc.d.API.Drain(testContext(t), drained, api.DrainRequest{TTL: "1h", Reason: "e2e status page", Force: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.RunResponse(browser, chromedp.Navigate(sc.d.APIURL+"/")); err != nil {
		t.Fatal(err)
	}
	moves, err := chromedp.Run(browser, chromedp.Nodes(chromedp.CSSAll("#moves tr td:first-child"), chromedp.AtLeast(0)))
	if err != nil {
		t.Fatal(err)
	}
	if len(moves) == 0 || len(moves) > 25 {
		t.Errorf("the page lists %d moves of the last dispatch (which blocked %s), want some, at most 25", len(moves), blocked)
	}
	if c := pageText(t, browser, `#clusters tr[data-cluster="`+drained+`"] td.capacity`); !strings.Contains(c, "configured") {
		t.Errorf("drained %s: capacity cell %q, want its configured capacity beside the drain", drained, c)
	}
	if st := pageText(t, browser, `#clusters tr[data-cluster="`+drained+`"] td.state`); !strings.Contains(st, "drained") || !strings.Contains(st, "configured") {
		t.Errorf("drained %s: state %q, want drained with its configured capacity", drained, st)
	}

	// A screenshot of a search result, for people (kept with E2E_KEEP=1);
	// quality 100 makes it a PNG.
	if err := chromedp.Do(browser, chromedp.EmulateViewport(1280, 900)); err != nil {
		t.Fatal(err)
	}
	search(t, browser, jobOriginUnit)
	png, err := chromedp.Run(browser, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("taking a screenshot: %v", err)
	}
	shot := filepath.Join(sc.dir, "statuspage.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", shot)
}

// search types job into the page's search field and clicks Search, a real
// form submit, and returns the response of the page it loads.
func search(t *testing.T, browser context.Context, job string) *network.Response {
	t.Helper()
	resp, err := chromedp.RunResponse(browser,
		chromedp.SetValue(chromedp.ID("job"), job),
		chromedp.Click(chromedp.CSS(`#search button[type=submit]`)),
	)
	if err != nil {
		t.Fatalf("searching %s through the form: %v", job, err)
	}
	return resp
}

// pageText is the visible text of the first element sel selects.
func pageText(t *testing.T, browser context.Context, sel string) string {
	t.Helper()
	text, err := chromedp.Run(browser, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("reading %s: %v", sel, err)
	}
	return strings.TrimSpace(text)
}

// requireChromium returns the path of Debian's chromium. With E2E=1 a
// missing chromium fails the test (install-assets.sh installs it).
func requireChromium(t *testing.T) string {
	t.Helper()
	require(t)
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is not installed (%v): e2e/hack/install-assets.sh installs Debian's chromium package", err)
	}
	return path
}

// newBrowser starts headless Chromium with a fresh profile under dir and
// returns a context for its first tab; the test's end stops it.
func newBrowser(t *testing.T, chromium, dir string) context.Context {
	t.Helper()
	profile, err := os.MkdirTemp(dir, "chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.UserDataDir(profile),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true), // the suite runs as root
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(testContext(t), opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	// The first action starts the browser, which lives as long as ctx.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", chromium, err)
	}
	return ctx
}

// configClusters returns the names of the clusters of a cluster config file.
func configClusters(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var byProvider map[string][]struct {
		Name string `json:"name"`
	}
	if err := yaml.Unmarshal(data, &byProvider); err != nil {
		t.Fatalf("cluster config %s: %v", path, err)
	}
	var names []string
	for _, clusters := range byProvider {
		for _, c := range clusters {
			names = append(names, c.Name)
		}
	}
	if len(names) == 0 {
		t.Fatal(fmt.Errorf("cluster config %s names no cluster", path))
	}
	return names
}
