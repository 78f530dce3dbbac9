package httpapi

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/health"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// StatusPagePath is the status page's path: the root of the API port only.
const StatusPagePath = "/"

// maxSearchMatches bounds the jobs a search lists.
const maxSearchMatches = 50

// statusRefreshSeconds is how often the page reloads itself (a meta
// refresh: no JavaScript).
const statusRefreshSeconds = 60

// overTarget is the load ratio above which a cluster's bar shows it over its
// target: balancing moves jobs only beyond 5 % over.
const overTarget = 1.05

//go:embed templates/status.html
var statusTemplates embed.FS

// statusPageTemplate is parsed once; it holds no state.
var statusPageTemplate = template.Must(template.New("status.html").Funcs(template.FuncMap{
	"when": formatWhen,
}).ParseFS(statusTemplates, "templates/status.html"))

// statusPageData is what the status page shows.
type statusPageData struct {
	Now       time.Time
	Status    dispatch.Status
	Clusters  []clusterRow
	Overrides []table.Override
	// Query is the job searched for ("" when none); Search its answer.
	Query  string
	Search *jobSearch
	// Refresh is the meta refresh period in seconds.
	Refresh int
	// MoreMoves is how many moves of the last dispatch the page leaves out.
	MoreMoves int
	// Replica, for a highly available dispatcher, is this replica and its leader.
	Replica *replicaRow
}

// replicaRow says which replica answered the page and which leads.
type replicaRow struct {
	Name, Leader string
	Leading      bool
}

// clusterRow is one row of the clusters table.
type clusterRow struct {
	dispatch.ClusterStatus
	// BarWidth is the load's share of the target in percent, capped at 100.
	BarWidth int
	// Percent is the uncapped load ratio in percent.
	Percent float64
	// Over is true when the load is more than 5 % over the target.
	Over bool
	// Unhealthy is true when the last health evaluation judged the cluster unhealthy.
	Unhealthy bool
	// HealthNumbers gives the numbers of the last health sample ("" without one).
	HealthNumbers string
}

// jobSearch is the answer to a job search.
type jobSearch struct {
	// Found is false for a job the table does not hold.
	Found bool
	// Matches are the jobs whose name contains the query, those starting
	// with it first (at most maxSearchMatches); Total counts them all.
	Matches    []string
	Total      int
	Assignment table.Assignment
	Override   *table.Override
	// Explanation is nil when Explain failed; ExplainError says why.
	Explanation  *engine.Explanation
	ExplainError string
}

// statusPage renders the HTML status page: the clusters with their loads,
// the drains, caps and overrides in force, and, with ?job=NAME, that job's
// assignment and explanation. An unknown job is answered 404 with the page.
func (a *API) statusPage(w http.ResponseWriter, r *http.Request) {
	data := statusPageData{Now: time.Now().UTC(), Status: a.Backend.Status(), Overrides: a.Backend.Overrides(),
		Query: strings.TrimSpace(r.URL.Query().Get("job")), Refresh: statusRefreshSeconds}
	if n := data.Status.LastDispatchMoves; n != nil {
		data.MoreMoves = max(*n-len(data.Status.LastMoves), 0)
	}
	if a.Leader != nil {
		leader, _, self := a.Leader.Leader()
		data.Replica = &replicaRow{Name: a.Leader.Replica(), Leader: leader, Leading: self}
	}
	for _, c := range a.Backend.Clusters() {
		data.Clusters = append(data.Clusters, newClusterRow(c))
	}
	code := http.StatusOK
	if data.Query != "" {
		data.Search = a.searchJob(data.Query, data.Overrides)
		if !data.Search.Found && data.Search.Total == 0 {
			code = http.StatusNotFound
		}
	}
	var buf bytes.Buffer
	if err := statusPageTemplate.Execute(&buf, data); err != nil {
		a.Log.Error(err, "Rendering the status page")
		http.Error(w, fmt.Sprintf("rendering the status page: %v", err), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// searchJob looks a job up and explains it, and lists the jobs whose name
// contains the query (any case).
func (a *API) searchJob(job string, overrides []table.Override) *jobSearch {
	s := &jobSearch{}
	s.Matches, s.Total = a.Backend.SearchJobs(job, maxSearchMatches)
	as, ok := a.Backend.Lookup(job)
	if !ok {
		return s
	}
	s.Found, s.Assignment = true, as
	for _, o := range overrides {
		if o.Job == job {
			s.Override = &o
			break
		}
	}
	ex, err := a.Backend.Explain(job)
	if err != nil {
		s.ExplainError = err.Error()
	} else {
		s.Explanation = ex
	}
	return s
}

// newClusterRow sizes a cluster's bar: its whole load against its target.
func newClusterRow(c dispatch.ClusterStatus) clusterRow {
	row := clusterRow{ClusterStatus: c, Unhealthy: c.Health != nil && c.Health.State == health.Unhealthy}
	if c.Health != nil && c.Health.Sample != nil {
		row.HealthNumbers = healthNumbers(*c.Health.Sample)
	}
	if c.Target > 0 && !math.IsNaN(c.Ratio) && !math.IsInf(c.Ratio, 0) {
		row.Percent = c.Ratio * 100
		row.BarWidth = int(math.Round(min(max(row.Percent, 0), 100)))
		row.Over = c.Ratio > overTarget
	}
	return row
}

// healthNumbers says what a health sample measured.
func healthNumbers(s health.Sample) string {
	out := fmt.Sprintf("errors %.1f %% of %.0f finished", s.ErrorShare*100, s.Samples)
	if !math.IsNaN(s.PendingSeconds) {
		out += fmt.Sprintf(", pending %s", time.Duration(s.PendingSeconds*float64(time.Second)).Round(time.Second))
	}
	return out
}

// formatWhen formats a time for the page, in UTC; the zero time is "never".
func formatWhen(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}
