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
	unplaceable                     // a requirement no usable cluster meets: its last eligible cluster, or none (cluster "")
)

// decision is the outcome of the rules for one job.
type decision struct {
	kind    decisionKind
	reason  table.Reason
	cluster string     // fixedJob; unplaceable: the last eligible cluster, "" for none
	set     clusterSet // balanceJob
	detail  string
	problem string // unplaceable: what no usable cluster meets
}

// constraint is one of rules 6 and 7 that applies to a job.
type constraint struct {
	reason table.Reason
	desc   string
	set    clusterSet // the usable clusters that meet it
	all    clusterSet // every known cluster that meets it, blocked or not balanced onto
}

// hard reports whether a job cannot run on a cluster that does not meet the
// constraint: a capability or kvm devices. A cloud or no-builds constraint
// is a preference: when no usable cluster meets it, it is ignored.
func (c *constraint) hard() bool {
	return c.reason == table.ReasonCapability || c.reason == table.ReasonKVM
}

// rule is one placement rule.
type rule struct {
	id     ruleID
	reason table.Reason
	// final rules apply to every job that reaches them: Explain shows them
	// as matched only when they decided.
	final bool
}

// ruleID selects a rule's case in Engine.apply (an int switch: a jump
// table, where a switch on the reason would compare strings).
type ruleID int

const (
	ruleAgent ruleID = iota
	ruleOverride
	ruleClusterJob
	ruleManual
	rulePinned
	ruleSSHBastion
	ruleConstraint // capability, kvm, no-builds, cloud: told apart by reason
	ruleGroupJob
	ruleGroupPath
	ruleBalanced
	ruleDefault
)

// rules are the placement rules, in order. Placement (decide) takes the
// first that applies; Explain lists them all with what each found. A rule is
// applied by Engine.apply; a new rule is one entry here and one case there.
var rules = [...]rule{
	{id: ruleAgent, reason: table.ReasonAgent},
	{id: ruleOverride, reason: table.ReasonOverride},
	{id: ruleClusterJob, reason: table.ReasonClusterJob},
	{id: ruleManual, reason: table.ReasonManual},
	{id: rulePinned, reason: table.ReasonPinned},
	{id: ruleSSHBastion, reason: table.ReasonSSHBastion},
	{id: ruleConstraint, reason: table.ReasonCapability},
	{id: ruleConstraint, reason: table.ReasonKVM},
	{id: ruleConstraint, reason: table.ReasonNoBuilds},
	{id: ruleConstraint, reason: table.ReasonCloud},
	{id: ruleGroupJob, reason: table.ReasonGroupJob},
	{id: ruleGroupPath, reason: table.ReasonGroupPath},
	{id: ruleBalanced, reason: table.ReasonBalanced, final: true},
	{id: ruleDefault, reason: table.ReasonDefault, final: true},
}

// decide applies the rules, in order, to a job whose previous cluster is prev.
func (e *Engine) decide(j *jobs.Job, prev previousRow) decision {
	var d decision
	for i := range rules {
		if ok, _ := e.apply(&rules[i], j, &prev, false, &d); ok {
			return d
		}
	}
	panic("engine: the default rule applies to every job") // unreachable
}

// apply applies one rule to job j, whose previous cluster is prev: it sets
// *d and returns true when the rule applies, and, when explain is set, a note
// saying what the rule found either way (placement leaves it off and builds
// no strings). The job and its previous row are separate parameters, not one
// struct: escape analysis would otherwise move every placed job to the heap.
func (e *Engine) apply(r *rule, j *jobs.Job, prev *previousRow, explain bool, d *decision) (ok bool, note string) {
	switch rule := r.reason; r.id {
	case ruleAgent:
		if explain {
			agent := j.Agent
			if agent == "" {
				agent = jobs.Agent
			}
			note = "agent " + agent + ": dispatched"
			if !dispatched(j) {
				note = "agent " + agent + ": not dispatched, left alone"
			}
		}
		if !dispatched(j) {
			*d = decision{kind: skipJob, reason: rule}
			return true, note
		}
		return false, note

	case ruleOverride:
		if o, ok := e.activeOverride(j.Name); ok {
			*d = decision{kind: fixedJob, reason: rule, cluster: o.Cluster, detail: overrideDetail(o)}
			if explain {
				note = "override to " + o.Cluster + ": " + d.detail
			}
			return true, note
		}
		if !explain {
			return false, ""
		}
		if o, ok := e.overrides[j.Name]; ok {
			return false, "override to " + o.Cluster + " expired at " + o.Expires.UTC().Format("2006-01-02T15:04:05Z")
		}
		return false, "no override"

	case ruleClusterJob:
		c, pattern := e.clusterJob(j.Name)
		if c == "" {
			return false, "not a cluster job"
		}
		if info, ok := e.lookup(c); !ok || !info.known() {
			return false, "name matches " + pattern + ", but no config names cluster " + c
		}
		// A group that lists the job by name is explicit config: OpenShift
		// CI runs the apply jobs of every build cluster on app.ci.
		if g, listed := e.groupJobs[j.Name]; listed && g != c {
			return false, "name matches " + pattern + ", but group " + g + " lists the job: the group decides"
		}
		detail := "works on cluster " + c + " (name matches " + pattern + "): kept there, blocked or not"
		*d = decision{kind: fixedJob, reason: rule, cluster: c, detail: detail}
		return true, detail

	case ruleManual:
		if c, fromConfig, ok := e.manualCluster(j, *prev); ok {
			detail := manualDetail(c, fromConfig)
			*d = decision{kind: fixedJob, reason: rule, cluster: c, detail: detail}
			return true, detail
		}
		return false, "not on a manual cluster"

	case rulePinned:
		pin := j.Requirements.Pin
		if pin == "" {
			return false, "no cluster label"
		}
		// A pin is honoured only to a cluster that can run jobs: one of the
		// cluster config, a manual one, or a service cluster, which the
		// configs and the job config name (a ProwJob's labels at admission
		// never add one). A name equal to a known one but for case is a typo.
		switch c, ok := e.lookup(pin); {
		case !ok || !c.known():
			if other := e.caseVariantOf(pin); other != "" {
				return false, "label pins the job to " + pin + ", which differs only in case from " + other + ": ignored"
			}
			return false, "label pins the job to " + pin + ", which no config names: ignored"
		case c.blocked:
			return false, "label pins the job to " + pin + e.unavailableNote(pin)
		}
		detail := "label pins the job to " + pin
		*d = decision{kind: fixedJob, reason: rule, cluster: pin, detail: detail}
		return true, detail

	case ruleSSHBastion:
		c, ok, why := e.sshBastion(j)
		if ok {
			detail := "ssh bastion label: the config's sshBastion " + c
			*d = decision{kind: fixedJob, reason: rule, cluster: c, detail: detail}
			return true, detail
		}
		return false, why

	case ruleConstraint:
		return e.applyConstraint(rule, j, prev, explain, d)

	case ruleGroupJob:
		c, listed := e.groupJobs[j.Name]
		switch {
		case !listed:
			return false, "not listed in a group"
		case e.isBlocked(c):
			return false, "listed in group " + c + e.unavailableNote(c)
		}
		detail := "listed in group " + c
		*d = decision{kind: fixedJob, reason: rule, cluster: c, detail: detail}
		return true, detail

	case ruleGroupPath:
		gp := e.groupPath(j.File)
		if gp == nil {
			if explain {
				note = fmt.Sprintf("job file %q matches no group path", j.File)
			}
			return false, note
		}
		if explain || !e.isBlocked(gp.cluster) {
			note = fmt.Sprintf("job file matches group %s path %q", gp.cluster, gp.pattern)
		}
		if e.isBlocked(gp.cluster) {
			return false, note + e.unavailableNote(gp.cluster)
		}
		*d = decision{kind: fixedJob, reason: rule, cluster: gp.cluster, detail: note}
		return true, note

	case ruleBalanced:
		if e.usable == 0 {
			return false, "no usable cluster to balance onto"
		}
		*d = decision{kind: balanceJob, reason: rule, set: e.usable, detail: e.balancedDetail}
		return true, e.balancedDetail

	case ruleDefault:
		c := e.in.Config.Default
		*d = decision{kind: fixedJob, reason: rule, cluster: c, detail: "no usable cluster to balance onto: the config's default " + c}
		return true, "the config's default " + c + " is the fallback"
	}
	panic("engine: no such rule " + string(r.reason))
}

// applyConstraint is apply for rules 6 and 7 (capability, kvm, no-builds,
// cloud), kept apart so that apply's frame stays small for the other rules.
func (e *Engine) applyConstraint(rule table.Reason, j *jobs.Job, prev *previousRow, explain bool, d *decision) (ok bool, note string) {
	if !e.hasConstraint(rule, &j.Requirements) {
		if explain {
			note = e.unmatchedConstraint(rule, &j.Requirements)
		}
		return false, note
	}
	var buf [4]constraint
	cons := e.constraints(&j.Requirements, buf[:0])
	// A preference (cloud, no-builds) that no usable cluster meets is
	// ignored: the later rules decide, as if the job had no such label.
	kept := cons[:0]
	for _, c := range cons {
		if c.set != 0 || c.hard() {
			kept = append(kept, c)
			continue
		}
		if c.reason == rule {
			if alt, ok := e.namedTarget(c); ok {
				*d = decision{kind: fixedJob, reason: rule, cluster: alt, detail: c.desc + ": no usable build cluster; " + alt + ", which the config lists, runs it"}
				return true, d.detail
			}
			if explain {
				note = c.desc + ": no usable cluster meets it: ignored"
			}
			return false, note
		}
	}
	cons = kept
	if explain {
		for _, c := range cons {
			if c.reason == rule {
				note = fmt.Sprintf("%s: %d usable cluster(s) qualify (%s)", c.desc, c.set.len(), e.names(c.set))
				if c.reason != cons[0].reason {
					note += "; " + string(cons[0].reason) + " decides, this narrows"
				}
			}
		}
	}
	if cons[0].reason != rule {
		return false, note // an earlier constraint decides
	}
	// The first constraint decides; the later ones narrow its clusters.
	set, ignored := eligible(cons)
	if set == 0 {
		if alt, ok := e.namedTarget(cons[0]); ok {
			*d = decision{kind: fixedJob, reason: rule, cluster: alt, detail: cons[0].desc + ": no usable build cluster; " + alt + ", which the config lists, runs it"}
			return true, note
		}
		*d = e.fallback(cons[0], *prev)
		if explain {
			note += "; " + d.detail
		}
		return true, note
	}
	*d = decision{kind: balanceJob, reason: cons[0].reason, set: set, detail: e.constraintDetail(cons, ignored, set)}
	return true, note
}

// namedTarget returns, for a kvm or no-builds constraint that no usable
// build cluster meets, the first cluster by name that its list names and
// that may run jobs without being balanced onto: a service or manual
// cluster, not blocked. Such a cluster runs exactly the jobs that name it.
func (e *Engine) namedTarget(c constraint) (string, bool) {
	if c.reason != table.ReasonKVM && c.reason != table.ReasonNoBuilds {
		return "", false
	}
	found := ""
	(c.all &^ e.blockedSet()).each(func(i int) {
		if found == "" && !e.clusters[i].inventory {
			found = e.clusters[i].name
		}
	})
	return found, found != ""
}

// blockedSet is the set of blocked known clusters.
func (e *Engine) blockedSet() clusterSet {
	var s clusterSet
	for i := range e.clusters {
		if i < maxKnownClusters && e.clusters[i].blocked {
			s |= setOf(i)
		}
	}
	return s
}

// clusterJob returns the cluster a cluster job's name captures, and the
// pattern it matched; an empty cluster for other jobs.
func (e *Engine) clusterJob(name string) (cluster, pattern string) {
	for _, re := range e.opts.ClusterJobs {
		m := re.FindStringSubmatch(name)
		if m == nil || len(m) < 2 {
			continue
		}
		i := re.SubexpIndex("cluster")
		if i < 0 {
			i = 1
		}
		return m[i], re.String()
	}
	return "", ""
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

// sshBastion returns the ssh bastion cluster when the job asks for it and the
// config names one that is not blocked; note says why not otherwise.
func (e *Engine) sshBastion(j *jobs.Job) (cluster string, ok bool, note string) {
	switch c := e.in.Config.SSHBastion; {
	case !j.Requirements.SSHBastion:
		return "", false, "no ssh-bastion label"
	case c == "":
		return "", false, "ssh-bastion label, but the config names no sshBastion cluster"
	case e.isBlocked(c):
		return "", false, "ssh-bastion label, but sshBastion " + c + e.unavailableNote(c)
	default:
		return c, true, ""
	}
}

// constraints returns the rules 6 and 7 that apply to the job, in rule order,
// each with the usable clusters that meet it. It appends to buf. The first
// decides the reason and must be met; later ones narrow the clusters when
// some cluster meets them too (see eligible).
func (e *Engine) constraints(r *jobs.Requirements, buf []constraint) []constraint {
	if e.hasConstraint(table.ReasonCapability, r) {
		all := ^clusterSet(0)
		for _, cp := range r.Capabilities {
			all &= e.capSets[cp]
		}
		buf = append(buf, constraint{reason: table.ReasonCapability, desc: "capabilities [" + strings.Join(r.Capabilities, " ") + "]", set: e.usable & all, all: all})
	}
	if e.hasConstraint(table.ReasonKVM, r) {
		buf = append(buf, constraint{reason: table.ReasonKVM, desc: "kvm", set: e.usable & e.kvm, all: e.kvm})
	}
	if e.hasConstraint(table.ReasonNoBuilds, r) {
		buf = append(buf, constraint{reason: table.ReasonNoBuilds, desc: "no-builds", set: e.usable & e.noBuilds, all: e.noBuilds})
	}
	if p, ok := e.cloudProvider(r.Cloud); ok {
		buf = append(buf, constraint{reason: table.ReasonCloud, desc: "cloud " + r.Cloud + " (provider " + p + ")", set: e.usable & e.providers[p], all: e.providers[p]})
	}
	return buf
}

// hasConstraint reports whether constraint rule applies to a job of
// requirements r: the one place that says when rules 6 and 7 apply.
func (e *Engine) hasConstraint(rule table.Reason, r *jobs.Requirements) bool {
	switch rule {
	case table.ReasonCapability:
		return len(r.Capabilities) > 0
	case table.ReasonKVM:
		return r.KVM && len(e.in.Config.KVM) > 0
	case table.ReasonNoBuilds:
		return r.NoBuilds && len(e.in.Config.NoBuilds) > 0
	case table.ReasonCloud:
		_, ok := e.cloudProvider(r.Cloud)
		return ok
	}
	return false
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

// fallback places a job whose hard constraint c no usable cluster meets.
// Sending it to a cluster without the capability would only make it fail,
// so it stays on its last eligible cluster (the previous one, when that
// meets c, blocked or not), and with none it gets no cluster at all: its
// ProwJob keeps the cluster its job config gives.
func (e *Engine) fallback(c constraint, prev previousRow) decision {
	problem := "no usable cluster meets " + c.desc
	if i, ok := e.byName[prev.cluster]; ok && c.all.has(i) {
		state := ""
		if e.clusters[i].blocked {
			state = ", blocked or drained"
		}
		return decision{kind: unplaceable, reason: c.reason, cluster: prev.cluster, problem: problem,
			detail: "unplaceable: " + problem + "; kept on its last eligible cluster " + prev.cluster + state}
	}
	return decision{kind: unplaceable, reason: c.reason, problem: problem,
		detail: "unplaceable: " + problem + ", and it ran on no cluster that does: left on the cluster its job config gives"}
}

// groupPath returns the first group path regex matching the job file, in
// group name order (nil for none). Results are cached per file.
func (e *Engine) groupPath(file string) *groupPath {
	if file == "" || len(e.groupPaths) == 0 {
		return nil
	}
	k, ok := e.fileGroups[file]
	if !ok {
		k = e.pathIndex.First(file)
		e.fileGroups[file] = k
	}
	if k < 0 {
		return nil
	}
	return &e.groupPaths[k]
}

// caseVariantOf returns the known cluster whose name equals name but for
// case, or "" for none.
func (e *Engine) caseVariantOf(name string) string {
	for i := range e.clusters {
		if c := &e.clusters[i]; c.known() && c.name != name && strings.EqualFold(c.name, name) {
			return c.name
		}
	}
	return ""
}

func (e *Engine) isManual(name string) bool {
	c, ok := e.lookup(name)
	return ok && c.manual
}

func (e *Engine) isBlocked(name string) bool {
	c, ok := e.lookup(name)
	return ok && c.blocked
}
