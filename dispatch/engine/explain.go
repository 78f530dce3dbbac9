package engine

import (
	"fmt"
	"strings"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// Explain says why the job is where it is: every rule in order (agent,
// override, manual, pinned, ssh-bastion, capability, kvm, no-builds, cloud,
// group-job, group-path, balanced, default) with whether it applies to the job,
// the clusters it may go to with their loads, and its assignment: its row in
// the current table, or where Place would put it now (without recording it).
func (e *Engine) Explain(job jobs.Job) *Explanation {
	e.mu.Lock()
	defer e.mu.Unlock()
	j := &job
	prev := e.current(j.Name)
	d := e.decide(j, prev)
	x := &Explanation{Job: j.Name, Requirements: j.Requirements}
	step := func(rule table.Reason, matched bool, detail string) {
		x.Steps = append(x.Steps, Step{Rule: rule, Matched: matched, Detail: detail})
	}

	agent := j.Agent
	if agent == "" {
		agent = jobs.Agent
	}
	if dispatched(j) {
		step(RuleAgent, false, "agent "+agent+": dispatched")
	} else {
		step(RuleAgent, true, "agent "+agent+": not dispatched, left alone")
	}

	if o, ok := e.activeOverride(j.Name); ok {
		step(table.ReasonOverride, true, "override to "+o.Cluster+": "+overrideDetail(o))
	} else if o, ok := e.overrides[j.Name]; ok {
		step(table.ReasonOverride, false, "override to "+o.Cluster+" expired at "+o.Expires.UTC().Format("2006-01-02T15:04:05Z"))
	} else {
		step(table.ReasonOverride, false, "no override")
	}

	if c, fromConfig, ok := e.manualCluster(j, prev); ok {
		step(table.ReasonManual, true, manualDetail(c, fromConfig))
	} else {
		step(table.ReasonManual, false, "not on a manual cluster")
	}

	if pin := j.Requirements.Pin; pin != "" {
		step(table.ReasonPinned, true, e.pinDetail(pin))
	} else {
		step(table.ReasonPinned, false, "no cluster label")
	}

	if c, ok, note := e.sshBastion(j); ok {
		step(table.ReasonSSHBastion, true, "ssh bastion label: the config's sshBastion "+c)
	} else {
		step(table.ReasonSSHBastion, false, note)
	}

	var buf [4]constraint
	cons := e.constraints(&j.Requirements, buf[:0])
	for _, rule := range []table.Reason{table.ReasonCapability, table.ReasonKVM, table.ReasonNoBuilds, table.ReasonCloud} {
		matched := false
		for _, c := range cons {
			if c.reason == rule {
				matched = true
				step(rule, true, fmt.Sprintf("%s: %d usable cluster(s) qualify (%s)", c.desc, c.set.len(), e.names(c.set)))
			}
		}
		if !matched {
			step(rule, false, e.unmatchedConstraint(rule, &j.Requirements))
		}
	}

	if c, ok := e.groupJobs[j.Name]; ok {
		step(table.ReasonGroupJob, !e.isBlocked(c), "listed in group "+c+blockedNote(e.isBlocked(c), c))
	} else {
		step(table.ReasonGroupJob, false, "not listed in a group")
	}
	if gp := e.groupPath(j.File); gp != nil {
		step(table.ReasonGroupPath, !e.isBlocked(gp.cluster), fmt.Sprintf("job file matches group %s path %q%s", gp.cluster, gp.pattern, blockedNote(e.isBlocked(gp.cluster), gp.cluster)))
	} else {
		step(table.ReasonGroupPath, false, fmt.Sprintf("job file %q matches no group path", j.File))
	}

	if i, ok := e.rowIndex[j.Name]; ok {
		x.Assignment = e.rows[i]
	} else if a, err := e.place(j); err == nil {
		x.Assignment = a
	}
	step(table.ReasonBalanced, x.Assignment.Reason == table.ReasonBalanced, e.balancedDetail)
	if x.Assignment.Reason == table.ReasonDefault {
		step(table.ReasonDefault, true, x.Assignment.Detail)
	} else {
		step(table.ReasonDefault, false, "the config's default "+e.in.Config.Default+" is the fallback")
	}

	switch d.kind {
	case balanceJob:
		d.set.each(func(c int) { x.Eligible = append(x.Eligible, e.clusterLoad(c)) })
	case fixedJob, unplaceable:
		if c, ok := e.byName[d.cluster]; ok {
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

func blockedNote(blocked bool, cluster string) string {
	if !blocked {
		return ""
	}
	return " (" + strings.TrimSpace(cluster) + " is blocked: skipped)"
}
