package webhook

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/go-logr/logr"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/api"
)

// maxMoves bounds the moves listed in a DispatchResponse.
const maxMoves = 100

// API serves the dispatcher's HTTP API (the paths of package api). The
// schedule endpoint and every GET are open; dispatch, reschedule and
// override deletion go through Auth.
type API struct {
	// Dispatcher answers every request.
	Dispatcher Dispatcher
	// Auth guards the state-changing requests.
	Auth Authorizer
	// Log records state-changing requests and internal errors.
	Log logr.Logger
}

// Register adds the API's routes to mux.
func (a *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST "+api.SchedulePath, a.schedule)
	mux.HandleFunc("GET "+api.AssignmentsPath+"{job}", a.assignment)
	mux.HandleFunc("GET "+api.AssignmentsPath+"{job}/explain", a.explain)
	mux.HandleFunc("GET "+api.ClustersPath, a.clusters)
	mux.HandleFunc("GET "+api.OverridesPath, a.overrides)
	mux.HandleFunc("GET "+api.BuildFarmPath, a.buildFarm)
	mux.HandleFunc("POST "+api.DispatchPath, a.Auth.wrap(a.dispatch))
	mux.HandleFunc("POST "+api.ReschedulePath, a.Auth.wrap(a.reschedule))
	mux.HandleFunc("DELETE "+api.ReschedulePath+"/{job}", a.Auth.wrap(a.deleteOverride))
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
	as, ok := a.Dispatcher.Lookup(req.Job)
	if !ok {
		writeError(w, http.StatusNotFound, "job %q is not in the assignment table", req.Job)
		return
	}
	writeJSON(w, http.StatusOK, api.ScheduleResponse{Cluster: as.Cluster})
}

func (a *API) assignment(w http.ResponseWriter, r *http.Request) {
	job := r.PathValue("job")
	as, ok := a.Dispatcher.Lookup(job)
	if !ok {
		writeError(w, http.StatusNotFound, "job %q is not in the assignment table", job)
		return
	}
	out := api.Assignment{Assignment: as}
	for _, o := range a.Dispatcher.Overrides() {
		if o.Job == job {
			out.Override = &o
			break
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) explain(w http.ResponseWriter, r *http.Request) {
	ex, err := a.Dispatcher.Explain(r.PathValue("job"))
	if err != nil {
		a.writeServiceError(w, "explain", err)
		return
	}
	writeJSON(w, http.StatusOK, ex)
}

func (a *API) clusters(w http.ResponseWriter, _ *http.Request) {
	cl := a.Dispatcher.Clusters()
	if cl == nil {
		cl = []engine.ClusterLoad{}
	}
	writeJSON(w, http.StatusOK, cl)
}

// buildFarm answers the dispatcher config in force with its buildFarm
// section regenerated from the table, as YAML ready for a pull request.
func (a *API) buildFarm(w http.ResponseWriter, _ *http.Request) {
	out, err := a.Dispatcher.BuildFarmConfig()
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
	ov := a.Dispatcher.Overrides()
	if ov == nil {
		ov = []table.Override{}
	}
	writeJSON(w, http.StatusOK, ov)
}

func (a *API) dispatch(w http.ResponseWriter, r *http.Request) {
	var empty struct{}
	if err := readJSON(w, r, &empty, true); err != nil {
		writeError(w, err.code, "%s", err.msg)
		return
	}
	rep, err := a.Dispatcher.Dispatch(r.Context())
	if err != nil {
		a.writeServiceError(w, "dispatch", err)
		return
	}
	a.Log.Info("dispatch requested over the API", "jobs", rep.Jobs, "moved", len(rep.Moves), "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, dispatchResponse(rep))
}

// dispatchResponse summarises a report for the API.
func dispatchResponse(rep *engine.Report) api.DispatchResponse {
	out := api.DispatchResponse{Jobs: rep.Jobs, Moved: len(rep.Moves), Imbalance: rep.Imbalance}
	if len(rep.Moves) > 0 {
		out.MovedTo = make(map[string]int)
		for _, m := range rep.Moves {
			out.MovedTo[m.To]++
		}
		out.Moves = rep.Moves[:min(len(rep.Moves), maxMoves)]
	}
	return out
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
	by := req.By
	if by == "" {
		by = "api"
	}
	res, err := a.Dispatcher.Reschedule(r.Context(), RescheduleRequest{Job: req.Job, Cluster: req.Cluster, TTL: ttl, Reason: req.Reason, By: by})
	if err != nil {
		a.writeServiceError(w, "reschedule", err)
		return
	}
	a.Log.Info("rescheduled over the API", "job", req.Job, "from", res.From, "to", res.To, "ttl", ttl, "by", by, "reason", req.Reason)
	writeJSON(w, http.StatusOK, api.RescheduleResponse{Job: req.Job, From: res.From, To: res.To, Override: res.Override})
}

func (a *API) deleteOverride(w http.ResponseWriter, r *http.Request) {
	job := r.PathValue("job")
	if err := a.Dispatcher.DeleteOverride(r.Context(), job); err != nil {
		a.writeServiceError(w, "deleting override", err)
		return
	}
	a.Log.Info("override deleted over the API", "job", job)
	w.WriteHeader(http.StatusNoContent)
}

// writeServiceError maps the dispatcher's errors to HTTP: ErrInvalid 400,
// ErrNotFound 404, anything else 500.
func (a *API) writeServiceError(w http.ResponseWriter, op string, err error) {
	switch {
	case errors.Is(err, ErrInvalid):
		writeError(w, http.StatusBadRequest, "%s: %v", op, err)
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, "%s: %v", op, err)
	default:
		a.Log.Error(err, "API request failed", "op", op)
		writeError(w, http.StatusInternalServerError, "%s: %v", op, err)
	}
}
