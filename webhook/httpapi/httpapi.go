package httpapi

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/go-logr/logr"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/api"
)

// maxMoves bounds the moves listed in a DispatchResponse, and the moves,
// staying and stranded jobs listed in a DrainPlan.
const maxMoves = 100

// MaxPlanRequestBytes bounds the body of a plan request, which carries
// whole config and job config files (api.MaxPlanRequestBytes).
const MaxPlanRequestBytes = api.MaxPlanRequestBytes

// API serves the dispatcher's HTTP API (the paths of package api). The
// schedule endpoint and every GET are open; dispatch, reschedule, override
// deletion, drains (previews included) and undrains go through Auth.
type API struct {
	// Backend answers every request.
	Backend Backend
	// Auth guards the state-changing requests.
	Auth Authorizer
	// Log records state-changing requests and internal errors.
	Log logr.Logger
	// Leader, for a highly available dispatcher, says which replica leads:
	// a follower forwards dispatch, reschedule, override deletion, drains
	// and undrains to it (see toLeader). Nil: every request is served here.
	Leader Leader
	// ReplicaAuth, with Leader, signs the writes this replica forwards to
	// the leader and verifies those forwarded to it; without it, forwarded
	// requests are refused.
	ReplicaAuth *ReplicaAuth
}

// Register adds the API's routes to mux.
func (a *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET "+StatusPagePath+"{$}", a.statusPage)
	mux.HandleFunc("POST "+api.SchedulePath, a.schedule)
	mux.HandleFunc("GET "+api.AssignmentsPath+"{job}", a.assignment)
	mux.HandleFunc("GET "+api.AssignmentsPath+"{job}/explain", a.explain)
	mux.HandleFunc("GET "+api.ClustersPath, a.clusters)
	mux.HandleFunc("GET "+api.OverridesPath, a.overrides)
	mux.HandleFunc("GET "+api.BuildFarmPath, a.buildFarm)
	mux.HandleFunc("POST "+api.DispatchPath, a.Auth.wrap(a.toLeader(a.dispatch, false)))
	mux.HandleFunc("POST "+api.ReschedulePath, a.Auth.wrap(a.toLeader(a.reschedule, true)))
	mux.HandleFunc("DELETE "+api.ReschedulePath+"/{job}", a.Auth.wrap(a.toLeader(a.deleteOverride, true)))
	mux.HandleFunc("GET "+api.DrainsPath, a.drains)
	mux.HandleFunc("POST "+api.ClustersPath+"/{cluster}/drain", a.Auth.wrap(a.toLeader(a.drain, true)))
	mux.HandleFunc("DELETE "+api.ClustersPath+"/{cluster}/drain", a.Auth.wrap(a.toLeader(a.undrain, true)))
	mux.HandleFunc("POST "+api.PlanPath, a.Auth.wrap(a.plan))
}

// Handler returns a mux serving the API alone.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	a.Register(mux)
	return mux
}

// schedule answers Prow's scheduler `external` strategy: {"job": name} in,
// {"cluster": name} out. A job the table does not hold is answered 404, so
// Prow keeps the job config's cluster: the request carries no labels, and a
// label-less delta assignment could place a capability job on a cluster
// that cannot run it.
func (a *API) schedule(w http.ResponseWriter, r *http.Request) {
	var req api.ScheduleRequest
	if err := readJSON(w, r, &req, false); err != nil {
		writeError(w, err.code, "%s", err.msg)
		return
	}
	if req.Job == "" {
		writeError(w, http.StatusBadRequest, "job is required")
		return
	}
	as, ok := a.Backend.Lookup(req.Job)
	if !ok {
		writeError(w, http.StatusNotFound, "job %q is not in the assignment table", req.Job)
		return
	}
	writeJSON(w, http.StatusOK, api.ScheduleResponse{Cluster: as.Cluster})
}

func (a *API) assignment(w http.ResponseWriter, r *http.Request) {
	job := r.PathValue("job")
	as, ok := a.Backend.Lookup(job)
	if !ok {
		writeError(w, http.StatusNotFound, "job %q is not in the assignment table", job)
		return
	}
	var override *table.Override
	for _, o := range a.Backend.Overrides() {
		if o.Job == job {
			override = &o
			break
		}
	}
	writeJSON(w, http.StatusOK, apiAssignment(as, override))
}

func (a *API) explain(w http.ResponseWriter, r *http.Request) {
	ex, err := a.Backend.Explain(r.PathValue("job"))
	if err != nil {
		a.writeServiceError(w, "explain", err)
		return
	}
	writeJSON(w, http.StatusOK, apiExplanation(ex))
}

func (a *API) clusters(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, apiClusterStatuses(a.Backend.Clusters()))
}

// buildFarm answers the dispatcher config in force with its buildFarm
// section regenerated from the table, as YAML ready for a pull request.
func (a *API) buildFarm(w http.ResponseWriter, _ *http.Request) {
	out, err := a.Backend.BuildFarmConfig()
	if err != nil {
		a.Log.Error(err, "Rendering the buildFarm config")
		writeError(w, http.StatusInternalServerError, "%s", err)
		return
	}
	w.Header().Set("Content-Type", "application/yaml")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(out)
}

func (a *API) overrides(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, apiOverrides(a.Backend.Overrides()))
}

func (a *API) dispatch(w http.ResponseWriter, r *http.Request) {
	var empty struct{}
	if err := readJSON(w, r, &empty, true); err != nil {
		writeError(w, err.code, "%s", err.msg)
		return
	}
	rep, err := a.Backend.Dispatch(r.Context())
	if err != nil {
		a.writeServiceError(w, "dispatch", err)
		return
	}
	a.Log.Info("dispatch requested over the API", "jobs", rep.Jobs, "moved", len(rep.Moves), "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, apiDispatchResponse(rep, maxMoves))
}

func (a *API) reschedule(w http.ResponseWriter, r *http.Request) {
	var req api.RescheduleRequest
	if err := readJSON(w, r, &req, false); err != nil {
		writeError(w, err.code, "%s", err.msg)
		return
	}
	if req.Job == "" {
		writeError(w, http.StatusBadRequest, "job is required")
		return
	}
	if strings.TrimSpace(req.Reason) == "" {
		writeError(w, http.StatusBadRequest, "reason is required")
		return
	}
	var ttl time.Duration
	if req.TTL != "" {
		var err error
		if ttl, err = time.ParseDuration(req.TTL); err != nil || ttl <= 0 {
			writeError(w, http.StatusBadRequest, "ttl %q: want a positive duration such as \"72h\"", req.TTL)
			return
		}
	}
	by := requester(r, req.By)
	res, err := a.Backend.Reschedule(r.Context(), dispatch.RescheduleRequest{Job: req.Job, Cluster: req.Cluster, TTL: ttl, Reason: req.Reason, By: by})
	if err != nil {
		a.writeServiceError(w, "reschedule", err)
		return
	}
	a.Log.Info("rescheduled over the API", "job", req.Job, "from", res.From, "to", res.To, "ttl", ttl, "by", by, "reason", req.Reason)
	writeJSON(w, http.StatusOK, api.RescheduleResponse{Job: req.Job, From: res.From, To: res.To, Override: apiOverride(res.Override)})
}

func (a *API) deleteOverride(w http.ResponseWriter, r *http.Request) {
	job := r.PathValue("job")
	if err := a.Backend.DeleteOverride(r.Context(), job); err != nil {
		a.writeServiceError(w, "deleting override", err)
		return
	}
	a.Log.Info("override deleted over the API", "job", job)
	w.WriteHeader(http.StatusNoContent)
}

// requester is who asked: the authenticated caller; what the request says
// of itself (forWhom) only adds for whom (the plugin names the commenter).
func requester(r *http.Request, forWhom string) string {
	by := callerOf(r)
	if forWhom != "" && forWhom != by {
		by += " for " + forWhom
	}
	return by
}

func (a *API) drains(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, apiDrains(a.Backend.Drains()))
}

// drain drains or caps the cluster of the path, or previews that (dryRun).
// A drain that would strand jobs is answered 409 with the jobs listed.
func (a *API) drain(w http.ResponseWriter, r *http.Request) {
	var body api.DrainRequest
	if err := readJSON(w, r, &body, false); err != nil {
		writeError(w, err.code, "%s", err.msg)
		return
	}
	cluster := r.PathValue("cluster")
	if strings.TrimSpace(body.Reason) == "" {
		writeError(w, http.StatusBadRequest, "reason is required")
		return
	}
	if body.TTL == "" {
		writeError(w, http.StatusBadRequest, "ttl is required: drains and caps always expire")
		return
	}
	ttl, err := time.ParseDuration(body.TTL)
	if err != nil || ttl <= 0 {
		writeError(w, http.StatusBadRequest, "ttl %q: want a positive duration such as \"4h\"", body.TTL)
		return
	}
	req := dispatch.DrainRequest{Cluster: cluster, Capacity: body.Capacity, TTL: ttl, Reason: body.Reason, By: requester(r, body.By), Force: body.Force}
	if body.DryRun {
		plan, err := a.Backend.PreviewDrain(r.Context(), req)
		if err != nil {
			a.writeServiceError(w, "drain preview", err)
			return
		}
		writeJSON(w, http.StatusOK, apiDrainPlan(plan, true, maxMoves))
		return
	}
	plan, err := a.Backend.Drain(r.Context(), req)
	if errors.Is(err, dispatch.ErrStranded) {
		writeStranded(w, plan, err)
		return
	}
	if err != nil && (plan == nil || !errors.Is(err, dispatch.ErrNotSaved)) {
		a.writeServiceError(w, "drain", err)
		return
	}
	a.Log.Info("cluster override over the API", "cluster", cluster, "capacity", body.Capacity, "ttl", ttl, "by", req.By,
		"reason", body.Reason, "force", body.Force, "moved", len(plan.Moves), "stranded", len(plan.Stranded), "saved", err == nil)
	if err != nil {
		a.writeServiceError(w, "drain", err)
		return
	}
	writeJSON(w, http.StatusOK, apiDrainPlan(plan, false, maxMoves))
}

// writeStranded answers a drain refused because it would strand jobs: 409,
// naming them from the refused drain's own plan.
func writeStranded(w http.ResponseWriter, plan *dispatch.DrainPlan, err error) {
	out := api.Error{Error: "drain: " + err.Error()}
	if plan != nil {
		out.Stranded, out.StrandedJobs = len(plan.Stranded), apiUnplaceable(plan.Stranded, maxMoves)
	}
	writeJSON(w, http.StatusConflict, out)
}

// undrain cancels the drain or cap of the path's cluster and answers the
// dispatch that followed.
func (a *API) undrain(w http.ResponseWriter, r *http.Request) {
	cluster := r.PathValue("cluster")
	by := requester(r, r.URL.Query().Get("by"))
	var cancelled *api.Drain
	for _, o := range a.Backend.Drains() {
		if o.Cluster == cluster {
			cancelled = apiDrain(&o)
		}
	}
	rep, err := a.Backend.Undrain(r.Context(), cluster, by)
	if err != nil {
		a.writeServiceError(w, "undrain", err)
		return
	}
	a.Log.Info("cluster override cancelled over the API", "cluster", cluster, "by", by, "moved", len(rep.Moves))
	writeJSON(w, http.StatusOK, api.UndrainResponse{Cluster: cluster, Cancelled: cancelled, Dispatch: apiDispatchResponse(rep, maxMoves)})
}

// writeServiceError maps the dispatcher's errors to HTTP: ErrInvalid 400,
// ErrNotFound 404, ErrStranded 409, ErrNotReady and ErrNotLeader (another
// replica leads) 503, ErrTimedOut 503 with Retry-After (a plan or preview
// past its time), ErrNotSaved 507 (in force, but a restart would lose it),
// anything else 500.
func (a *API) writeServiceError(w http.ResponseWriter, op string, err error) {
	switch {
	case errors.Is(err, dispatch.ErrInvalid):
		writeError(w, http.StatusBadRequest, "%s: %v", op, err)
	case errors.Is(err, dispatch.ErrNotFound):
		writeError(w, http.StatusNotFound, "%s: %v", op, err)
	case errors.Is(err, dispatch.ErrStranded):
		writeError(w, http.StatusConflict, "%s: %v", op, err)
	case errors.Is(err, dispatch.ErrNotReady), errors.Is(err, dispatch.ErrNotLeader):
		writeError(w, http.StatusServiceUnavailable, "%s: %v", op, err)
	case errors.Is(err, dispatch.ErrTimedOut):
		w.Header().Set("Retry-After", "60")
		writeError(w, http.StatusServiceUnavailable, "%s: %v", op, err)
	case errors.Is(err, dispatch.ErrNotSaved):
		a.Log.Error(err, "API write not saved", "op", op)
		writeError(w, http.StatusInsufficientStorage, "%s: %v", op, err)
	default:
		a.Log.Error(err, "API request failed", "op", op)
		writeError(w, http.StatusInternalServerError, "%s: %v", op, err)
	}
}

// plan answers what a dispatch on the proposed configs and job config
// files would do, changing nothing; files that do not load are answered 400
// with every problem, a body over MaxPlanRequestBytes 413.
func (a *API) plan(w http.ResponseWriter, r *http.Request) {
	var body api.PlanRequest
	if err := readJSONLimit(w, r, &body, true, MaxPlanRequestBytes); err != nil {
		if err.code == http.StatusRequestEntityTooLarge {
			writeError(w, err.code, "plan: %s (%d MiB): propose fewer or smaller job config files", err.msg, MaxPlanRequestBytes>>20)
			return
		}
		writeError(w, err.code, "%s", err.msg)
		return
	}
	wi, err := a.Backend.WhatIf(r.Context(), whatIfRequest(&body, maxMoves))
	var ce *dispatch.ConfigError
	if errors.As(err, &ce) {
		writeJSON(w, http.StatusBadRequest, api.Error{Error: "plan: " + err.Error(), Problems: ce.Problems})
		return
	}
	if err != nil {
		a.writeServiceError(w, "plan", err)
		return
	}
	writeJSON(w, http.StatusOK, apiPlan(wi, maxMoves))
}
