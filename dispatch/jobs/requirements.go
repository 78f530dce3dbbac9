// Package jobs reads the Prow job config into the engine's view of a job:
// its name, its file, its agent and the placement requirements its labels
// carry. Requirements are extracted from labels here and nowhere else.
package jobs

import (
	"sort"
	"strings"
)

// Labels names the job labels that steer placement. The defaults are OpenShift CI's.
type Labels struct {
	// CapabilityPrefix marks a required capability: "capability/NAME: NAME".
	CapabilityPrefix string `json:"capabilityPrefix"`
	// Cluster pins the job to a cluster.
	Cluster string `json:"cluster"`
	// KVM asks for a cluster with KVM devices.
	KVM string `json:"kvm"`
	// NoBuilds marks a job that runs no builds.
	NoBuilds string `json:"noBuilds"`
	// Cloud names the cloud the job's e2e test runs on.
	Cloud string `json:"cloud"`
	// SSHBastion asks for the ssh bastion cluster.
	SSHBastion string `json:"sshBastion"`
}

// DefaultLabels returns OpenShift CI's label names.
func DefaultLabels() Labels {
	return Labels{
		CapabilityPrefix: "capability/",
		Cluster:          "ci-operator.openshift.io/cluster",
		KVM:              "devices.kubevirt.io/kvm",
		NoBuilds:         "ci.openshift.io/no-builds",
		Cloud:            "ci-operator.openshift.io/cloud",
		SSHBastion:       "dptp.openshift.io/ssh-bastion",
	}
}

// Requirements are what a job's labels ask of its cluster.
type Requirements struct {
	// Capabilities the cluster must all have, sorted, without duplicates.
	Capabilities []string `json:"capabilities,omitempty"`
	// Pin is the cluster the job is pinned to, if any.
	Pin string `json:"pin,omitempty"`
	// KVM, NoBuilds and SSHBastion are set when the job carries that label.
	KVM        bool `json:"kvm,omitempty"`
	NoBuilds   bool `json:"noBuilds,omitempty"`
	SSHBastion bool `json:"sshBastion,omitempty"`
	// Cloud is the job's cloud label value, if any.
	Cloud string `json:"cloud,omitempty"`
}

// Requirements extracts placement requirements from a job's labels. It and
// apply, which the job file reader calls label by label, are the only place
// that parses capabilities: "capability/NAME: NAME" requires NAME;
// a capability label whose value differs from its suffix still requires the
// suffix, so a typo in the value cannot silently drop a requirement.
func (l Labels) Requirements(labels map[string]string) Requirements {
	var r Requirements
	for k, v := range labels {
		l.apply(&r, k, v)
	}
	sort.Strings(r.Capabilities)
	return r
}

// apply records in r what the label k: v asks for. A caller that applies a
// job's labels one by one, each key once, and then sorts r.Capabilities gets
// what Requirements gives for the same labels.
func (l Labels) apply(r *Requirements, k, v string) {
	switch {
	case l.CapabilityPrefix != "" && strings.HasPrefix(k, l.CapabilityPrefix):
		if name := strings.TrimPrefix(k, l.CapabilityPrefix); name != "" {
			r.Capabilities = append(r.Capabilities, name)
		}
	case k == l.Cluster:
		r.Pin = v
	case k == l.KVM:
		r.KVM = true
	case k == l.NoBuilds:
		r.NoBuilds = true
	case k == l.SSHBastion:
		r.SSHBastion = true
	case k == l.Cloud:
		r.Cloud = v
	}
}
