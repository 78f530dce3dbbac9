package httpapi

import (
	"math"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/health"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/api"
)

// The conversions from the dispatcher's types to the API's wire types: the
// only place that knows both.

func apiAssignment(a table.Assignment, o *table.Override) api.Assignment {
	out := api.Assignment{
		Job: a.Job, Cluster: a.Cluster, Reason: string(a.Reason), Detail: a.Detail,
		File: a.File, Demand: a.Demand, AssignedAt: a.AssignedAt,
	}
	if o != nil {
		ov := apiOverride(*o)
		out.Override = &ov
	}
	return out
}

func apiOverride(o table.Override) api.Override {
	return api.Override{Job: o.Job, Cluster: o.Cluster, Reason: o.Reason, By: o.By, CreatedAt: o.CreatedAt, Expires: o.Expires}
}

func apiOverrides(list []table.Override) []api.Override {
	out := make([]api.Override, len(list))
	for i, o := range list {
		out[i] = apiOverride(o)
	}
	return out
}

func apiExplanation(x *engine.Explanation) api.Explanation {
	r := x.Requirements
	out := api.Explanation{
		Job: x.Job,
		Requirements: api.Requirements{
			Capabilities: r.Capabilities, Pin: r.Pin, KVM: r.KVM, NoBuilds: r.NoBuilds, SSHBastion: r.SSHBastion, Cloud: r.Cloud,
		},
		Steps:      make([]api.Step, len(x.Steps)),
		Assignment: apiAssignment(x.Assignment, nil),
	}
	for i, s := range x.Steps {
		out.Steps[i] = api.Step{Rule: string(s.Rule), Matched: s.Matched, Detail: s.Detail}
	}
	if len(x.Eligible) > 0 {
		out.Eligible = apiClusters(x.Eligible)
	}
	return out
}

func apiClusters(loads []engine.ClusterLoad) []api.ClusterStatus {
	out := make([]api.ClusterStatus, len(loads))
	for i := range loads {
		out[i] = apiCluster(&loads[i])
	}
	return out
}

// apiClusterStatuses converts the clusters' loads with their health.
func apiClusterStatuses(cs []dispatch.ClusterStatus) []api.ClusterStatus {
	out := make([]api.ClusterStatus, len(cs))
	for i := range cs {
		out[i] = apiCluster(&cs[i].ClusterLoad)
		out[i].Health = apiClusterHealth(cs[i].Health)
	}
	return out
}

func apiCluster(l *engine.ClusterLoad) api.ClusterStatus {
	return api.ClusterStatus{
		Name: l.Name, Provider: l.Provider, Capacity: l.Capacity, Capabilities: l.Capabilities,
		Blocked: l.Blocked, Manual: l.Manual, Override: apiDrain(l.Override), Role: l.Role, Jobs: l.Jobs, Demand: l.Demand,
		BalancedJobs: l.BalancedJobs, BalancedDemand: l.BalancedDemand, ForcedJobs: l.ForcedJobs, ForcedDemand: l.ForcedDemand,
		Target: l.Target, Ratio: l.Ratio, ConfiguredCapacity: l.ConfiguredCapacity,
	}
}

// apiClusterHealth converts a cluster's health; numbers JSON cannot carry
// (NaN, an infinite pending time) are left out.
func apiClusterHealth(h *health.Status) *api.ClusterHealth {
	if h == nil {
		return nil
	}
	out := &api.ClusterHealth{
		State: string(h.State), Since: h.Since, Evidence: string(h.Evidence), Candidate: string(h.Candidate), CandidateSince: h.CandidateSince,
		Reason: h.Reason, Mode: string(h.Mode), Action: h.Action, Evaluated: h.Evaluated,
	}
	finite := func(v float64) *float64 {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil
		}
		return &v
	}
	if s := h.Sample; s != nil {
		out.ErrorShare, out.Samples, out.PendingSeconds = finite(s.ErrorShare), finite(s.Samples), finite(s.PendingSeconds)
	}
	return out
}

// apiDispatchResponse summarises a report, listing at most maxMoves moves.
func apiDispatchResponse(rep *engine.Report, maxMoves int) api.DispatchResponse {
	out := api.DispatchResponse{Jobs: rep.Jobs, Moved: len(rep.Moves), Imbalance: rep.Imbalance, Unplaceable: len(rep.Unplaceable)}
	out.UnplaceableJobs = apiUnplaceable(rep.Unplaceable, maxMoves)
	if len(rep.Moves) == 0 {
		return out
	}
	out.MovedTo = make(map[string]int)
	for _, m := range rep.Moves {
		out.MovedTo[m.To]++
	}
	out.Moves = apiMoves(rep.Moves, maxMoves)
	return out
}

// apiMoves converts the first n moves; none stays nil.
func apiMoves(moves []engine.Move, n int) []api.Move {
	var out []api.Move
	for _, m := range moves[:min(len(moves), n)] {
		out = append(out, api.Move{Job: m.Job, From: m.From, To: m.To, Reason: string(m.Reason)})
	}
	return out
}

// apiUnplaceable converts the first n unplaceable jobs; none stays nil.
func apiUnplaceable(us []engine.Unplaceable, n int) []api.UnplaceableJob {
	var out []api.UnplaceableJob
	for _, u := range us[:min(len(us), n)] {
		out = append(out, api.UnplaceableJob{Job: u.Job, Problem: u.Problem, Cluster: u.Cluster})
	}
	return out
}

// apiDrainPlan converts a drain's plan, listing at most max moves, staying
// and stranded jobs (the counts are complete).
func apiDrainPlan(p *dispatch.DrainPlan, dryRun bool, max int) api.DrainPlan {
	out := api.DrainPlan{
		DryRun: dryRun, Override: *apiDrain(&p.Override),
		Moved: len(p.Moves), Moves: apiMoves(p.Moves, max),
		Staying: len(p.Staying), Stranded: len(p.Stranded), StrandedJobs: apiUnplaceable(p.Stranded, max),
		Unconfirmed: p.Unconfirmed,
	}
	if len(p.To) > 0 {
		out.Flows = make(map[string]api.Flow, len(p.To))
		for c, f := range p.To {
			out.Flows[c] = api.Flow{Jobs: f.Jobs, Demand: f.Demand}
		}
	}
	for _, s := range p.Staying[:min(len(p.Staying), max)] {
		out.StayingJobs = append(out.StayingJobs, api.StayingJob{Job: s.Job, Reason: string(s.Reason), Detail: s.Detail})
	}
	return out
}

// apiDrains converts the drains and caps in force; none is an empty list.
func apiDrains(list []table.Drain) []api.Drain {
	out := make([]api.Drain, len(list))
	for i := range list {
		out[i] = *apiDrain(&list[i])
	}
	return out
}

// apiDrain converts a drain or cap; nil stays nil.
func apiDrain(o *table.Drain) *api.Drain {
	if o == nil {
		return nil
	}
	return &api.Drain{Cluster: o.Cluster, Capacity: o.Capacity, Reason: o.Reason, By: o.By, CreatedAt: o.CreatedAt, Expires: o.Expires}
}

// whatIfRequest converts a plan request, to list at most max moves,
// unplaceable, added and removed jobs. A null job config file is deleted.
func whatIfRequest(body *api.PlanRequest, max int) dispatch.WhatIfRequest {
	req := dispatch.WhatIfRequest{
		DispatcherConfigPath: body.DispatcherConfigPath, ClusterConfigPath: body.ClusterConfigPath,
		JobConfigDirPath: body.JobConfigDir, MaxMoves: max,
	}
	if body.DispatcherConfig != nil {
		req.DispatcherConfig = []byte(*body.DispatcherConfig)
	}
	if body.ClusterConfig != nil {
		req.ClusterConfig = []byte(*body.ClusterConfig)
	}
	if len(body.JobConfigFiles) > 0 {
		req.JobConfigFiles = make(map[string][]byte, len(body.JobConfigFiles))
		for p, content := range body.JobConfigFiles {
			if content == nil {
				req.JobConfigFiles[p] = nil
			} else {
				req.JobConfigFiles[p] = []byte(*content)
			}
		}
	}
	return req
}

// apiPlan converts a what-if, listing at most max moves, unplaceable,
// added and removed jobs (the counts are complete).
func apiPlan(w *dispatch.WhatIf, max int) api.PlanResponse {
	return api.PlanResponse{
		Moved: w.MovedJobs, MovedDemand: w.MovedDemand, Moves: apiMoves(w.Moves, max),
		To: apiFlows(w.To), From: apiFlows(w.From), Clusters: apiClusters(w.Clusters),
		Unplaceable: w.UnplaceableJobs, UnplaceableJobs: apiUnplaceable(w.Unplaceable, max),
		Added: w.AddedJobs, AddedJobs: apiJobChanges(w.Added, max), AddedTo: apiFlows(w.AddedTo),
		Removed: w.RemovedJobs, RemovedJobs: apiJobChanges(w.Removed, max), RemovedFrom: apiFlows(w.RemovedFrom),
	}
}

// apiJobChanges converts the first n added or removed jobs; none stays nil.
func apiJobChanges(cs []dispatch.JobChange, n int) []api.JobChange {
	var out []api.JobChange
	for _, c := range cs[:min(len(cs), n)] {
		out = append(out, api.JobChange{Job: c.Job, File: c.File, Cluster: c.Cluster, Reason: string(c.Reason), Detail: c.Detail, Demand: c.Demand})
	}
	return out
}

// apiFlows converts flows by cluster; none stays nil.
func apiFlows(m map[string]dispatch.Flow) map[string]api.Flow {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]api.Flow, len(m))
	for c, f := range m {
		out[c] = api.Flow{Jobs: f.Jobs, Demand: f.Demand}
	}
	return out
}
