package engine

import (
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// Explain says why the job is where it is: every rule of rules in order,
// with whether it applies to the job and what it found, the clusters the
// job may go to with their loads, and its assignment: its row in the current
// table, or where Place would put it now (without recording it).
func (e *Engine) Explain(job jobs.Job) *Explanation {
	e.mu.Lock()
	defer e.mu.Unlock()
	j := &job
	prev := e.current(j.Name)
	x := &Explanation{Job: j.Name, Requirements: j.Requirements, Steps: make([]Step, 0, len(rules))}
	var decided *decision
	for i := range rules {
		r := &rules[i]
		var d decision
		ok, note := e.apply(r, j, &prev, true, &d)
		if ok && decided == nil {
			decided = &d
		}
		if r.final {
			ok = decided != nil && decided.reason == r.reason
			if ok {
				note = decided.detail
			}
		}
		x.Steps = append(x.Steps, Step{Rule: r.reason, Matched: ok, Detail: note})
	}

	if i, ok := e.rowIndex[j.Name]; ok {
		x.Assignment = e.rows[i]
	} else if a, err := e.place(j); err == nil {
		x.Assignment = a
	}
	switch decided.kind {
	case balanceJob:
		decided.set.each(func(c int) { x.Eligible = append(x.Eligible, e.clusterLoad(c)) })
	case fixedJob, unplaceable:
		if c, ok := e.byName[decided.cluster]; ok {
			x.Eligible = []ClusterLoad{e.clusterLoad(c)}
		}
	}
	return x
}

// unmatchedConstraint says why a rule of 6 and 7 does not apply to a job.
func (e *Engine) unmatchedConstraint(rule table.Reason, r *jobs.Requirements) string {
	switch rule {
	case table.ReasonCapability:
		return "no capability labels"
	case table.ReasonKVM:
		if r.KVM {
			return "kvm label, but the config lists no kvm clusters"
		}
		return "no kvm label"
	case table.ReasonNoBuilds:
		if r.NoBuilds {
			return "no-builds label, but the config lists no noBuilds clusters"
		}
		return "no no-builds label"
	default:
		switch {
		case r.Cloud == "":
			return "no cloud label"
		case !e.in.Config.DetermineE2EByJob:
			return "cloud " + r.Cloud + ", but determineE2EByJob is off"
		default:
			return "cloud " + r.Cloud + " maps to no provider of the cluster config"
		}
	}
}
