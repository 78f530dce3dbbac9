package engine

import (
	"fmt"
	"strings"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// decisionKind says how the rules placed a job.
type decisionKind int

const (
	skipJob     decisionKind = iota // agent is not kubernetes: not in the table
	fixedJob                        // a rule named the cluster
	balanceJob                      // balanced among set
	unplaceable                     // a constraint no usable cluster meets: previous cluster or default
)

// decision is the outcome of the rules for one job.
type decision struct {
	kind    decisionKind
	reason  table.Reason
	cluster string     // fixedJob, unplaceable
	set     clusterSet // balanceJob
	detail  string
	problem string // unplaceable: what no cluster meets
}

// constraint is one of rules 6 and 7 that applies to a job.
type constraint struct {
	reason table.Reason
	desc   string
	set    clusterSet // the usable clusters that meet it
}

// decide applies the rules, in order, to a job whose previous cluster is prev.
func (e *Engine) decide(j *jobs.Job, prev previousRow) decision {
	if !dispatched(j) {
		return decision{kind: skipJob}
	}
	if o, ok := e.activeOverride(j.Name); ok {
		return decision{kind: fixedJob, reason: table.ReasonOverride, cluster: o.Cluster, detail: overrideDetail(o)}
	}
	if c, fromConfig, ok := e.manualCluster(j, prev); ok {
		return decision{kind: fixedJob, reason: table.ReasonManual, cluster: c, detail: manualDetail(c, fromConfig)}
	}
	if pin := j.Requirements.Pin; pin != "" {
		return decision{kind: fixedJob, reason: table.ReasonPinned, cluster: pin, detail: e.pinDetail(pin)}
	}
	if c, ok, _ := e.sshBastion(j); ok {
		return decision{kind: fixedJob, reason: table.ReasonSSHBastion, cluster: c, detail: "ssh bastion label: the config's sshBastion " + c}
	}
	var buf [4]constraint
	if cons := e.constraints(&j.Requirements, buf[:0]); len(cons) > 0 {
		set, ignored := eligible(cons)
		if set == 0 {
			return e.fallback(cons[:1], prev)
		}
		return decision{kind: balanceJob, reason: cons[0].reason, set: set, detail: e.constraintDetail(cons, ignored, set)}
	}
	if c, ok := e.groupJobs[j.Name]; ok && !e.isBlocked(c) {
		return decision{kind: fixedJob, reason: table.ReasonGroupJob, cluster: c, detail: "listed in group " + c}
	}
	if gp := e.groupPath(j.File); gp != nil && !e.isBlocked(gp.cluster) {
		return decision{kind: fixedJob, reason: table.ReasonGroupPath, cluster: gp.cluster,
			detail: fmt.Sprintf("job file matches group %s path %q", gp.cluster, gp.pattern)}
	}
	if e.usable == 0 {
		return decision{kind: fixedJob, reason: table.ReasonDefault, cluster: e.in.Config.Default,
			detail: "no usable cluster to balance onto: the config's default " + e.in.Config.Default}
	}
	return decision{kind: balanceJob, reason: table.ReasonBalanced, set: e.usable, detail: e.balancedDetail}
}

// activeOverride returns the job's override if it is in force at Input.Now.
func (e *Engine) activeOverride(job string) (table.Override, bool) {
	o, ok := e.overrides[job]
	if !ok || o.Cluster == "" || !o.Active(e.in.Now) {
		return table.Override{}, false
	}
	return o, true
}

func overrideDetail(o table.Override) string {
	until := "until deleted"
	if !o.Expires.IsZero() {
		until = "until " + o.Expires.UTC().Format("2006-01-02T15:04:05Z")
	}
	by := o.By
	if by == "" {
		by = "an operator"
	}
	return fmt.Sprintf("rescheduled by %s %s: %s", by, until, o.Reason)
}

// manualCluster returns the manual cluster the job is already on: the one its
// job config names, or else its previous cluster when a previous dispatch
// found it there (reason manual, or no reason: buildFarm or an older table).
// A job that an override, pin or group put on a manual cluster returns to the
// rules once that reason is gone.
func (e *Engine) manualCluster(j *jobs.Job, prev previousRow) (cluster string, fromConfig, ok bool) {
	if j.Cluster != "" && e.isManual(j.Cluster) {
		return j.Cluster, true, true
	}
	if prev.cluster != "" && e.isManual(prev.cluster) && (prev.reason == table.ReasonManual || prev.reason == "") {
		return prev.cluster, false, true
	}
	return "", false, false
}

func manualDetail(c string, fromConfig bool) string {
	if fromConfig {
		return "the job config names manual cluster " + c
	}
	return "already on manual cluster " + c
}

func (e *Engine) pinDetail(pin string) string {
	c, ok := e.lookup(pin)
	switch {
	case !ok || !c.known():
		return "label pins the job to " + pin + " (not in the cluster config)"
	case c.blocked:
		return "label pins the job to " + pin + " (blocked, kept: pins are honoured)"
	}
	return "label pins the job to " + pin
}

// sshBastion returns the ssh bastion cluster when the job asks for it and the
// config names one that is not blocked; note says why not otherwise.
func (e *Engine) sshBastion(j *jobs.Job) (cluster string, ok bool, note string) {
	switch c := e.in.Config.SSHBastion; {
	case !j.Requirements.SSHBastion:
		return "", false, "no ssh-bastion label"
	case c == "":
		return "", false, "ssh-bastion label, but the config names no sshBastion cluster"
	case e.isBlocked(c):
		return "", false, "ssh-bastion label, but sshBastion " + c + " is blocked"
	default:
		return c, true, ""
	}
}

// constraints returns the rules 6 and 7 that apply to the job, in rule order,
// each with the usable clusters that meet it. It appends to buf. The first
// decides the reason and must be met; later ones narrow the clusters when
// some cluster meets them too (see eligible).
func (e *Engine) constraints(r *jobs.Requirements, buf []constraint) []constraint {
	if len(r.Capabilities) > 0 {
		set := e.usable
		for _, cp := range r.Capabilities {
			set &= e.capSets[cp]
		}
		buf = append(buf, constraint{reason: table.ReasonCapability, desc: "capabilities [" + strings.Join(r.Capabilities, " ") + "]", set: set})
	}
	if r.KVM && len(e.in.Config.KVM) > 0 {
		buf = append(buf, constraint{reason: table.ReasonKVM, desc: "kvm", set: e.usable & e.kvm})
	}
	if r.NoBuilds && len(e.in.Config.NoBuilds) > 0 {
		buf = append(buf, constraint{reason: table.ReasonNoBuilds, desc: "no-builds", set: e.usable & e.noBuilds})
	}
	if p, ok := e.cloudProvider(r.Cloud); ok {
		buf = append(buf, constraint{reason: table.ReasonCloud, desc: "cloud " + r.Cloud + " (provider " + p + ")", set: e.usable & e.providers[p]})
	}
	return buf
}

// cloudProvider maps a cloud label value to a provider of the cluster config,
// when the config determines e2e clusters by job.
func (e *Engine) cloudProvider(cloud string) (string, bool) {
	if cloud == "" || !e.in.Config.DetermineE2EByJob {
		return "", false
	}
	p := cloud
	if m, ok := e.in.Config.CloudMapping[cloud]; ok && m != "" {
		p = m
	}
	_, ok := e.providers[p]
	return p, ok
}

// eligible returns the usable clusters that meet the job's first
// constraint (the rule that decides) and, of the later ones, each that still
// leaves a cluster; ignored has bit k set for each later constraint k left out
// (none of the clusters meeting the earlier ones meets it). The set is empty
// when no usable cluster meets the first constraint.
func eligible(cons []constraint) (set clusterSet, ignored uint) {
	set = cons[0].set
	if set == 0 {
		return 0, 0
	}
	for k, c := range cons[1:] {
		if s := set & c.set; s != 0 {
			set = s
		} else {
			ignored |= 1 << uint(k+1)
		}
	}
	return set, ignored
}

// constraintDetail describes a balancing decision among set.
func (e *Engine) constraintDetail(cons []constraint, ignored uint, set clusterSet) string {
	n := set.len()
	plural := "s"
	if n == 1 {
		plural = ""
	}
	if len(cons) == 0 {
		return fmt.Sprintf("balanced among %d usable cluster%s", n, plural)
	}
	var met, left []string
	for k, c := range cons {
		if ignored&(1<<uint(k)) != 0 {
			left = append(left, c.desc)
		} else {
			met = append(met, c.desc)
		}
	}
	d := fmt.Sprintf("%s: balanced among %d eligible cluster%s (%s)", strings.Join(met, ", "), n, plural, e.names(set))
	if len(left) > 0 {
		d += "; ignored " + strings.Join(left, ", ") + ": no eligible cluster meets it too"
	}
	return d
}

// fallback places a job whose constraints no usable cluster meets: on its
// previous cluster if that is still known and not blocked (and was not
// itself the default fallback), else on the default.
func (e *Engine) fallback(cons []constraint, prev previousRow) decision {
	descs := make([]string, len(cons))
	for i, c := range cons {
		descs[i] = c.desc
	}
	problem := "no usable cluster meets " + strings.Join(descs, ", ")
	// A previous default placement is not kept as such: the default applies again.
	if c, ok := e.lookup(prev.cluster); ok && c.known() && !c.blocked && prev.reason != table.ReasonDefault {
		return decision{kind: unplaceable, reason: cons[0].reason, cluster: prev.cluster, problem: problem,
			detail: "unplaceable: " + problem + "; kept on previous cluster " + prev.cluster}
	}
	d := e.in.Config.Default
	return decision{kind: unplaceable, reason: table.ReasonDefault, cluster: d, problem: problem,
		detail: "unplaceable: " + problem + "; the config's default " + d}
}

// groupPath returns the first group path regex matching the job file, in
// group name order (nil for none). Results are cached per file.
func (e *Engine) groupPath(file string) *groupPath {
	if file == "" || len(e.groupPaths) == 0 {
		return nil
	}
	k, ok := e.fileGroups[file]
	if !ok {
		k = -1
		for i := range e.groupPaths {
			if e.groupPaths[i].re.MatchString(file) {
				k = i
				break
			}
		}
		e.fileGroups[file] = k
	}
	if k < 0 {
		return nil
	}
	return &e.groupPaths[k]
}

func (e *Engine) isManual(name string) bool {
	c, ok := e.lookup(name)
	return ok && c.manual
}

func (e *Engine) isBlocked(name string) bool {
	c, ok := e.lookup(name)
	return ok && c.blocked
}
