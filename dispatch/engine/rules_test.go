package engine_test

import (
	"errors"
	"fmt"
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
	// stranded: no cluster meets the job's requirement and it ran on none
	// that does: no row, and Place refuses with ErrUnplaceable.
	stranded bool
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
		{name: "capability only a blocked cluster has, new job: no row", job: req("gpu", jobs.Requirements{Capabilities: []string{"gpu"}}),
			reason: table.ReasonCapability, stranded: true, detail: "unplaceable: no usable cluster meets capabilities [gpu]", unplaceable: true},
		{name: "an incapable previous cluster is not kept", job: req("gpu-prev", jobs.Requirements{Capabilities: []string{"gpu"}}),
			previous: prev("gpu-prev", "build03", table.ReasonCapability), reason: table.ReasonCapability, stranded: true, unplaceable: true},
		{name: "the last eligible cluster is kept, blocked or not", job: req("gpu-blocked", jobs.Requirements{Capabilities: []string{"gpu"}}),
			previous: prev("gpu-blocked", "build04", table.ReasonCapability), want: []string{"build04"}, reason: table.ReasonCapability,
			detail: "kept on its last eligible cluster build04, blocked", unplaceable: true},
		{name: "unknown capability", job: req("quantum", jobs.Requirements{Capabilities: []string{"quantum"}}),
			reason: table.ReasonCapability, stranded: true, unplaceable: true},
		{name: "unknown capability, previously on the default: not kept", job: req("quantum-default", jobs.Requirements{Capabilities: []string{"quantum"}}),
			previous: prev("quantum-default", "build01", table.ReasonDefault), reason: table.ReasonCapability, stranded: true, unplaceable: true},
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
			if tc.stranded {
				if ok {
					t.Fatalf("stranded job in the table: %+v", a)
				}
				if len(rep.Unplaceable) != 1 || rep.Unplaceable[0].Job != tc.job.Name || rep.Unplaceable[0].Cluster != "" {
					t.Errorf("unplaceable report %+v, want the job with no cluster", rep.Unplaceable)
				}
				return
			}
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
			reported := len(rep.Unplaceable) == 1 && rep.Unplaceable[0].Job == tc.job.Name && rep.Unplaceable[0].Cluster == a.Cluster
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
		t.Fatalf("unplaceable %+v, want one entry", rep.Unplaceable)
	}
	u := rep.Unplaceable[0]
	if u.Job != "needs-gpu-and-quantum" || u.Cluster != "" || !strings.Contains(u.Problem, "capabilities [gpu quantum]") {
		t.Errorf("unplaceable entry %+v, want the job, no cluster and both capabilities", u)
	}
}

func TestDispatchWithoutDefaultFails(t *testing.T) {
	in := fixture(t, job("plain"))
	for p, cs := range in.Clusters.Providers {
		for i := range cs {
			in.Clusters.Providers[p][i].Blocked = true
		}
	}
	in.Config.Default = ""
	e, err := engine.New(in)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.Dispatch(); !errors.Is(err, engine.ErrNoCluster) || !strings.Contains(err.Error(), `"plain"`) {
		t.Errorf("Dispatch error %v, want ErrNoCluster naming the job", err)
	}
}

// TestNeverOnAnIncapableCluster is the workload of issue 10: when the one
// gpu cluster is blocked, no gpu job may land on a cluster without gpu (the
// old fallback sent every one of them to the default, where each ProwJob
// would fail). Jobs that ran there stay; new ones get no row. Preferences
// (cloud, no-builds) that no usable cluster meets are ignored instead.
func TestNeverOnAnIncapableCluster(t *testing.T) {
	var js []jobs.Job
	var prev []table.Assignment
	for i := range 40 {
		j := job(fmt.Sprintf("gpu-%02d", i))
		j.Requirements.Capabilities = []string{"gpu"}
		js = append(js, j)
		if i%2 == 0 { // half ran on the gpu cluster before it was blocked
			prev = append(prev, table.Assignment{Job: j.Name, Cluster: "build04", Reason: table.ReasonCapability, Demand: 1})
		}
	}
	for i := range 20 {
		js = append(js, job(fmt.Sprintf("plain-%02d", i)))
	}
	in := fixture(t, js...)
	in.Previous = &table.Table{Assignments: prev}
	_, tb, rep := dispatch(t, in)
	rows := tb.ByJob()
	kept, stranded := 0, 0
	for _, j := range js[:40] {
		a, ok := rows[j.Name]
		switch {
		case !ok:
			stranded++
		case a.Cluster == "build04":
			kept++
		default:
			t.Errorf("%s on %s, which has no gpu", j.Name, a.Cluster)
		}
	}
	if kept != 20 || stranded != 20 || len(rep.Unplaceable) != 40 {
		t.Errorf("kept %d on build04, %d without a row, %d reported; want 20, 20, 40", kept, stranded, len(rep.Unplaceable))
	}

	// A preference no usable cluster meets is ignored: every gcp cluster blocked.
	cloud := job("e2e-gcp")
	cloud.Requirements.Cloud = "gcp"
	in = fixture(t, cloud, job("plain"))
	for i := range in.Clusters.Providers["gcp"] {
		in.Clusters.Providers["gcp"][i].Blocked = true
	}
	_, tb, rep = dispatch(t, in)
	if a := tb.ByJob()["e2e-gcp"]; a.Reason != table.ReasonBalanced || len(rep.Unplaceable) != 0 {
		t.Errorf("gcp job with every gcp cluster blocked: %+v, unplaceable %+v; want balanced", a, rep.Unplaceable)
	}

	// kvm listing only a service cluster: kvm jobs go there, nothing else does.
	kvm := job("needs-kvm")
	kvm.Requirements.KVM = true
	in = fixture(t, kvm, job("plain"))
	in.Config.KVM = []string{"kvm01"}
	_, tb, _ = dispatch(t, in)
	if a := tb.ByJob()["needs-kvm"]; a.Cluster != "kvm01" || a.Reason != table.ReasonKVM {
		t.Errorf("kvm job: %+v, want kvm01 (kvm)", a)
	}
	if a := tb.ByJob()["plain"]; a.Cluster == "kvm01" {
		t.Errorf("plain job balanced onto service cluster kvm01")
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
