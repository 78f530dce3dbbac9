package engine_test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/config"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// ruleCase is one job and where the rules must put it.
type ruleCase struct {
	name        string
	job         jobs.Job
	previous    *table.Assignment
	override    *table.Override
	skipped     bool
	want        []string // the cluster must be one of these
	reason      table.Reason
	detail      string // a substring of the Detail
	unplaceable bool
	// placeWant and placeReason, when set, are where Place puts the job
	// when the engine's input lacks it (a job first seen at admission).
	placeWant   []string
	placeReason table.Reason
}

func ruleCases() []ruleCase {
	with := func(j jobs.Job, f func(*jobs.Job)) jobs.Job { f(&j); return j }
	req := func(name string, r jobs.Requirements) jobs.Job {
		return with(job(name), func(j *jobs.Job) { j.Requirements = r })
	}
	prev := func(job, cluster string, r table.Reason) *table.Assignment {
		return &table.Assignment{Job: job, Cluster: cluster, Reason: r, Demand: 1, AssignedAt: now.Add(-time.Hour)}
	}
	return []ruleCase{
		{name: "other agent is skipped", job: with(job("jenkins-job"), func(j *jobs.Job) { j.Agent = "jenkins" }), skipped: true},
		{name: "empty agent is kubernetes", job: with(job("no-agent"), func(j *jobs.Job) { j.Agent = "" }),
			want: usableFixture, reason: table.ReasonBalanced, detail: "balanced among 4 usable clusters"},
		{name: "active override", job: req("overridden", jobs.Requirements{Pin: "build05"}),
			override: &table.Override{Cluster: "build02", Reason: "build05 degraded", By: "alice", Expires: now.Add(time.Hour)},
			want:     []string{"build02"}, reason: table.ReasonOverride, detail: "rescheduled by alice"},
		{name: "override to a manual cluster", job: job("overridden-manual"),
			override: &table.Override{Cluster: "vsphere02", Reason: "test"}, want: []string{"vsphere02"}, reason: table.ReasonOverride},
		{name: "expired override is ignored", job: req("expired", jobs.Requirements{Pin: "build05"}),
			override: &table.Override{Cluster: "build02", Expires: now.Add(-time.Second)}, want: []string{"build05"}, reason: table.ReasonPinned},
		{name: "job config names a manual cluster", job: with(req("manual-config", jobs.Requirements{Pin: "build05"}), func(j *jobs.Job) { j.Cluster = "vsphere02" }),
			want: []string{"vsphere02"}, reason: table.ReasonManual, detail: "job config names manual cluster vsphere02"},
		{name: "job config names a normal cluster: ignored", job: with(job("config-cluster"), func(j *jobs.Job) { j.Cluster = "build03" }),
			want: usableFixture, reason: table.ReasonBalanced},
		{name: "previously on a manual cluster", job: job("manual-prev"), previous: prev("manual-prev", "vsphere02", table.ReasonManual),
			want: []string{"vsphere02"}, reason: table.ReasonManual, detail: "already on manual cluster vsphere02"},
		{name: "previously overridden to a manual cluster: back to the rules", job: job("manual-prev-override"),
			previous: prev("manual-prev-override", "vsphere02", table.ReasonOverride), want: usableFixture, reason: table.ReasonBalanced},
		{name: "pinned", job: req("pinned", jobs.Requirements{Pin: "build03", SSHBastion: true, Capabilities: []string{"arm64"}}),
			want: []string{"build03"}, reason: table.ReasonPinned, detail: "label pins the job to build03"},
		{name: "pinned outside every config: a service cluster", job: req("pinned-unknown", jobs.Requirements{Pin: "build99"}),
			want: []string{"build99"}, reason: table.ReasonPinned, detail: "label pins the job to build99",
			// A ProwJob's labels at admission never add a service cluster.
			placeWant: usableFixture, placeReason: table.ReasonBalanced},
		{name: "pinned to a case variant of a known cluster: ignored", job: req("pinned-case", jobs.Requirements{Pin: "BUILD03"}),
			want: usableFixture, reason: table.ReasonBalanced},
		{name: "pinned to a blocked cluster: ignored", job: req("pinned-blocked", jobs.Requirements{Pin: "build04", Capabilities: []string{"arm64"}}),
			want: []string{"build01", "build05"}, reason: table.ReasonCapability},
		{name: "pinned to a manual cluster", job: req("pinned-manual", jobs.Requirements{Pin: "vsphere02"}),
			want: []string{"vsphere02"}, reason: table.ReasonPinned},
		{name: "ssh bastion", job: req("bastion", jobs.Requirements{SSHBastion: true, Capabilities: []string{"rce"}}),
			want: []string{"build01"}, reason: table.ReasonSSHBastion},
		{name: "capability", job: req("arm", jobs.Requirements{Capabilities: []string{"arm64"}}),
			want: []string{"build01", "build05"}, reason: table.ReasonCapability, detail: "capabilities [arm64]: balanced among 2 eligible clusters (build01, build05)"},
		{name: "two capabilities", job: req("arm-rce", jobs.Requirements{Capabilities: []string{"arm64", "rce"}}),
			want: []string{"build05"}, reason: table.ReasonCapability},
		{name: "capability only a blocked cluster has: default", job: req("gpu", jobs.Requirements{Capabilities: []string{"gpu"}}),
			want: []string{"build01"}, reason: table.ReasonDefault, detail: "unplaceable: no usable cluster meets capabilities [gpu]", unplaceable: true},
		{name: "unplaceable keeps a previous cluster that still qualifies", job: req("gpu-prev", jobs.Requirements{Capabilities: []string{"gpu"}}),
			previous: prev("gpu-prev", "build03", table.ReasonCapability), want: []string{"build03"}, reason: table.ReasonCapability,
			detail: "kept on previous cluster build03", unplaceable: true},
		{name: "unplaceable leaves a blocked previous cluster", job: req("gpu-blocked", jobs.Requirements{Capabilities: []string{"gpu"}}),
			previous: prev("gpu-blocked", "build04", table.ReasonCapability), want: []string{"build01"}, reason: table.ReasonDefault, unplaceable: true},
		{name: "unknown capability", job: req("quantum", jobs.Requirements{Capabilities: []string{"quantum"}}),
			want: []string{"build01"}, reason: table.ReasonDefault, unplaceable: true},
		{name: "kvm", job: req("kvm", jobs.Requirements{KVM: true}), want: []string{"build02"}, reason: table.ReasonKVM},
		{name: "no-builds", job: req("nobuilds", jobs.Requirements{NoBuilds: true}), want: []string{"build03"}, reason: table.ReasonNoBuilds},
		{name: "capability decides, kvm narrows when it can", job: req("arm-kvm", jobs.Requirements{Capabilities: []string{"rce"}, NoBuilds: true}),
			want: []string{"build03"}, reason: table.ReasonCapability, detail: "capabilities [rce], no-builds"},
		{name: "a later constraint nobody else meets is ignored", job: req("arm-kvm2", jobs.Requirements{Capabilities: []string{"arm64"}, KVM: true}),
			want: []string{"build01", "build05"}, reason: table.ReasonCapability, detail: "ignored kvm"},
		{name: "cloud mapped to a provider", job: req("cloud", jobs.Requirements{Cloud: "aws-arm64"}),
			want: []string{"build01", "build03"}, reason: table.ReasonCloud, detail: "cloud aws-arm64 (provider aws)"},
		{name: "cloud that is a provider", job: req("cloud-gcp", jobs.Requirements{Cloud: "gcp"}),
			want: []string{"build02"}, reason: table.ReasonCloud},
		{name: "cloud mapped to no provider", job: req("cloud-none", jobs.Requirements{Cloud: "openstack"}),
			want: usableFixture, reason: table.ReasonBalanced},
		{name: "group by job name", job: job("periodic-image-import"), want: []string{"build03"}, reason: table.ReasonGroupJob, detail: "listed in group build03"},
		{name: "group by path", job: with(job("priv"), func(j *jobs.Job) { j.File = "openshift-priv/foo/foo-presubmits.yaml" }),
			want: []string{"build03"}, reason: table.ReasonGroupPath, detail: `path "^openshift-priv/"`},
		{name: "capability before group", job: with(req("priv-arm", jobs.Requirements{Capabilities: []string{"arm64"}}), func(j *jobs.Job) { j.File = "openshift-priv/x.yaml" }),
			want: []string{"build01", "build05"}, reason: table.ReasonCapability},
		{name: "group on a blocked cluster is skipped", job: job("periodic-on-blocked"), want: usableFixture, reason: table.ReasonBalanced},
		{name: "balanced", job: job("plain"), want: usableFixture, reason: table.ReasonBalanced},
	}
}

func TestDispatchRules(t *testing.T) {
	for _, tc := range ruleCases() {
		t.Run(tc.name, func(t *testing.T) {
			in := fixture(t, tc.job)
			if tc.previous != nil {
				in.Previous = &table.Table{Assignments: []table.Assignment{*tc.previous}}
			}
			if tc.override != nil {
				in.Overrides[tc.job.Name] = *tc.override
			}
			_, tb, rep := dispatch(t, in)
			rows := tb.ByJob()
			a, ok := rows[tc.job.Name]
			if tc.skipped {
				if ok {
					t.Fatalf("job in the table: %+v", a)
				}
				return
			}
			if !ok {
				t.Fatalf("job not in the table")
			}
			if !contains(tc.want, a.Cluster) || a.Reason != tc.reason {
				t.Errorf("got %s (%s), want one of %v (%s); detail %q", a.Cluster, a.Reason, tc.want, tc.reason, a.Detail)
			}
			if !strings.Contains(a.Detail, tc.detail) {
				t.Errorf("detail %q does not contain %q", a.Detail, tc.detail)
			}
			reported := len(rep.Unplaceable) == 1 && strings.HasPrefix(rep.Unplaceable[0], tc.job.Name+": ")
			if reported != tc.unplaceable {
				t.Errorf("unplaceable report %q, want the job listed: %v", rep.Unplaceable, tc.unplaceable)
			}
			if a.Demand != 1 {
				t.Errorf("demand %v, want the default 1 (no demand known)", a.Demand)
			}
		})
	}
}

func TestUnplaceableReportNamesJobAndCapabilities(t *testing.T) {
	j := job("needs-gpu-and-quantum")
	j.Requirements.Capabilities = []string{"gpu", "quantum"}
	_, _, rep := dispatch(t, fixture(t, j, job("plain")))
	if len(rep.Unplaceable) != 1 {
		t.Fatalf("unplaceable %q, want one entry", rep.Unplaceable)
	}
	for _, want := range []string{"needs-gpu-and-quantum", "gpu", "quantum", "build01"} {
		if !strings.Contains(rep.Unplaceable[0], want) {
			t.Errorf("unplaceable entry %q does not name %q", rep.Unplaceable[0], want)
		}
	}
}

func TestDispatchWithoutDefaultFails(t *testing.T) {
	j := job("gpu")
	j.Requirements.Capabilities = []string{"gpu"}
	in := fixture(t, j)
	in.Config.Default = ""
	e, err := engine.New(in)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.Dispatch(); err == nil || !strings.Contains(err.Error(), `"gpu"`) {
		t.Errorf("Dispatch error %v, want one naming the job", err)
	}
}

func TestClusterJobsStayOnTheirCluster(t *testing.T) {
	var patterns []*regexp.Regexp
	for _, p := range engine.DefaultClusterJobPatterns {
		patterns = append(patterns, regexp.MustCompile(p))
	}
	for _, tc := range []struct {
		job    jobs.Job
		want   []string
		reason table.Reason
		group  string // a group that lists the job
	}{
		{job: job("periodic-build04-upgrade"), want: []string{"build04"}, reason: table.ReasonClusterJob}, // blocked, kept
		// OpenShift CI lists the apply jobs in group app.ci, a service cluster: they run there.
		{job: job("periodic-openshift-release-master-build03-apply"), want: []string{"app.ci"}, reason: table.ReasonGroupJob, group: "app.ci"},
		{job: job("periodic-build03-upgrade"), want: []string{"build03"}, reason: table.ReasonClusterJob, group: "build03"},
		{job: job("periodic-openshift-release-master-build02-apply"), want: []string{"build02"}, reason: table.ReasonClusterJob},
		{job: job("periodic-openshift-release-master-vsphere02-apply"), want: []string{"vsphere02"}, reason: table.ReasonClusterJob}, // manual
		{job: job("periodic-build99-upgrade"), want: usableFixture, reason: table.ReasonBalanced},                                    // no such cluster
		{job: job("periodic-ci-openshift-release-master-nightly-4.18-upgrade"), want: usableFixture, reason: table.ReasonBalanced},   // not a cluster
	} {
		t.Run(tc.job.Name, func(t *testing.T) {
			in := fixture(t, tc.job)
			if tc.group != "" {
				in.Config.Groups[tc.group] = config.Group{Jobs: []string{tc.job.Name}}
			}
			in.Options.ClusterJobs = patterns
			in.Overrides = map[string]table.Override{}
			e, tb, _ := dispatch(t, in)
			a := tb.ByJob()[tc.job.Name]
			if !contains(tc.want, a.Cluster) || a.Reason != tc.reason {
				t.Errorf("placed on %s (%s: %s), want one of %v (%s)", a.Cluster, a.Reason, a.Detail, tc.want, tc.reason)
			}
			if x := e.Explain(tc.job); x.Steps[2].Rule != table.ReasonClusterJob || x.Steps[2].Matched != (tc.reason == table.ReasonClusterJob) {
				t.Errorf("explain step %+v", x.Steps[2])
			}
		})
	}
}
