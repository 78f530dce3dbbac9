// Package enginetest generates large, realistic engine inputs for tests,
// benchmarks and load tests: many jobs in many job files, clusters of
// varying capacity with capabilities, and heavy-tailed demand. The same
// arguments always give the same input.
package enginetest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/config"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// Now is the time of every generated input.
var Now = time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)

// ManualCluster is the generated config's manual cluster.
const ManualCluster = "vsphere02"

// Shares of the generated jobs that carry each requirement.
const (
	shareCapability = 0.05
	shareKVM        = 0.01
	shareNoBuilds   = 0.01
	shareCloud      = 0.01
	sharePinned     = 0.003
	shareSSHBastion = 0.002
	shareManual     = 0.002
	shareOtherAgent = 0.01
	shareNoDemand   = 0.08
	groupJobs       = 20
)

var capabilityNames = []string{"arm64", "intranet", "gpu", "sshd-bastion", "rce", "large-memory"}

var providers = []string{"aws", "gcp", "azure"}

// Workload returns an engine input of jobs jobs spread over files job files
// (every file has at least one job when jobs >= files), clusters build
// clusters named build01... over three providers with capacities 30..100
// (build04 blocked, when there are at least four), capabilities
// capabilities spread over the usable clusters, and lognormal demand. About
// 5 % of the jobs need a capability, 1 % each kvm, no-builds and a cloud;
// a few are pinned, need the ssh bastion, sit on the manual cluster, are
// listed in a group, match a group path, or run on another agent; 8 % have no
// demand data. A few overrides are set, one of them expired.
func Workload(numJobs, files, clusters, capabilities int, seed int64) engine.Input {
	r := rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15))
	cc, usable := clusterConfig(r, clusters, capabilities)
	caps := make([]string, capabilities)
	for k := range caps {
		caps[k] = capabilityName(k)
	}
	pick := func(n int) []string { // n distinct usable clusters
		perm := r.Perm(len(usable))
		out := make([]string, 0, n)
		for _, p := range perm[:min(n, len(usable))] {
			out = append(out, usable[p])
		}
		return out
	}
	groupCluster := usable[len(usable)-1]
	dc := &config.DispatcherConfig{
		Default:           usable[0],
		SSHBastion:        usable[min(1, len(usable)-1)],
		KVM:               pick(2),
		NoBuilds:          pick(2),
		ManualClusters:    []string{ManualCluster},
		Groups:            map[string]config.Group{groupCluster: {Paths: []string{`^openshift-priv/.*-presubmits\.yaml$`}}},
		DetermineE2EByJob: true,
		CloudMapping:      map[string]string{"aws-arm64": "aws", "gce": "gcp"},
	}

	fileNames := make([]string, files)
	for f := range fileNames {
		org := "openshift"
		if f%97 == 0 {
			org = "openshift-priv"
		}
		fileNames[f] = fmt.Sprintf("%s/repo%04d/%s-repo%04d-release-4.%d-presubmits.yaml", org, f/4, org, f/4, f%4)
	}
	in := engine.Input{
		Jobs:      make([]jobs.Job, 0, numJobs),
		Config:    dc,
		Clusters:  cc,
		Demand:    make(map[string]float64, numJobs),
		Overrides: map[string]table.Override{},
		Now:       Now,
	}
	clouds := []string{"aws", "gcp", "aws-arm64", "gce", "openstack"}
	group := dc.Groups[groupCluster]
	for i := range numJobs {
		f := i
		if i >= files || files == 0 {
			f = r.IntN(max(files, 1))
		}
		j := jobs.Job{
			Name:  fmt.Sprintf("pull-ci-job%06d-e2e", i),
			File:  fileNames[f%max(files, 1)],
			Type:  jobs.Presubmit,
			Agent: jobs.Agent,
		}
		if files == 0 {
			j.File = ""
		}
		switch u := r.Float64(); {
		case u < shareOtherAgent:
			j.Agent = "jenkins"
		case u < shareOtherAgent+shareManual:
			j.Cluster = ManualCluster
		case u < shareOtherAgent+shareManual+sharePinned:
			j.Requirements.Pin = pick(1)[0]
		case u < shareOtherAgent+shareManual+sharePinned+shareSSHBastion:
			j.Requirements.SSHBastion = true
		}
		if capabilities > 0 && r.Float64() < shareCapability {
			j.Requirements.Capabilities = []string{caps[r.IntN(len(caps))]}
		}
		j.Requirements.KVM = r.Float64() < shareKVM
		j.Requirements.NoBuilds = r.Float64() < shareNoBuilds
		if r.Float64() < shareCloud {
			j.Requirements.Cloud = clouds[r.IntN(len(clouds))]
		}
		if len(group.Jobs) < groupJobs && r.Float64() < 0.01 {
			group.Jobs = append(group.Jobs, j.Name)
		}
		if r.Float64() >= shareNoDemand {
			in.Demand[j.Name] = math.Round(math.Exp(3+1.2*r.NormFloat64())*100) / 100
		}
		in.Jobs = append(in.Jobs, j)
	}
	dc.Groups[groupCluster] = group
	for k := 0; k < 5 && len(in.Jobs) > 0; k++ {
		j := in.Jobs[r.IntN(len(in.Jobs))]
		o := table.Override{Job: j.Name, Cluster: pick(1)[0], Reason: "load test", By: "enginetest", CreatedAt: Now.Add(-time.Hour)}
		if k == 0 {
			o.Expires = Now.Add(-time.Minute)
		}
		in.Overrides[j.Name] = o
	}
	return in
}

// clusterConfig returns the cluster config and the names of its usable clusters.
func clusterConfig(r *rand.Rand, n, capabilities int) (*config.Clusters, []string) {
	cc := &config.Clusters{Providers: map[string][]config.Cluster{}}
	var all []*config.Cluster
	var usable []string
	list := make([]config.Cluster, n)
	for i := range list {
		c := &list[i]
		c.Name = fmt.Sprintf("build%02d", i+1)
		c.Provider = providers[i%len(providers)]
		c.Capacity = 30 + r.IntN(71)
		switch i {
		case 0:
			c.Capacity = 100
		case 1:
			c.Capacity = 30
		}
		c.Blocked = i == 3
		all = append(all, c)
		if !c.Blocked {
			usable = append(usable, c.Name)
		}
	}
	// Capability k goes to 2..4 usable clusters, and to the blocked one for k = 0.
	for k := 0; k < capabilities && len(usable) > 0; k++ {
		for m := range 2 + k%3 {
			name := usable[(k*3+m*5)%len(usable)]
			for _, c := range all {
				if c.Name == name && !contains(c.Capabilities, capabilityName(k)) {
					c.Capabilities = append(c.Capabilities, capabilityName(k))
				}
			}
		}
		if k == 0 && n > 3 {
			all[3].Capabilities = append(all[3].Capabilities, capabilityName(k))
		}
	}
	for _, c := range all {
		cc.Providers[c.Provider] = append(cc.Providers[c.Provider], *c)
	}
	return cc, usable
}

func capabilityName(k int) string {
	if k < len(capabilityNames) {
		return capabilityNames[k]
	}
	return fmt.Sprintf("capability%02d", k)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
