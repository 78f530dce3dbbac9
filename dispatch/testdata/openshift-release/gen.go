//go:build ignore

// gen writes a fixture shaped like OpenShift CI's real dispatcher inputs
// (openshift/release core-services/sanitize-prow-jobs/_config.yaml and
// ci-operator/jobs): every key the real _config.yaml has, a buildFarm of
// thousands of file names (most of them, as in the real file, name files
// the job config no longer has), groups of service cluster app.ci with job
// names and path regexes, kvm, sshBastion and cloudMapping, and a job
// config tree with the labels prowgen writes. _clusters.yaml is the real
// file. Run from this folder: go run gen.go
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// job is one generated job.
type job struct {
	kind   string // presubmits, postsubmits, periodics
	repo   string // org/repo
	name   string
	labels map[string]string
	branch string
}

func main() {
	files := map[string][]job{} // path relative to jobs/ -> jobs
	repos := []string{
		"openshift/origin", "openshift/installer", "openshift/machine-config-operator", "openshift/ci-tools",
		"openshift/cluster-api-provider-aws", "openshift/hypershift", "openshift/kubernetes", "openshift/oc",
		"openshift-priv/origin", "redhat-developer/odo", "openshift/release", "openshift/console",
	}
	branches := []string{"main", "release-4.17", "release-4.18"}
	for r, repo := range repos {
		org, name, _ := strings.Cut(repo, "/")
		for b, branch := range branches {
			if repo == "openshift/release" && branch != "main" {
				continue
			}
			base := fmt.Sprintf("%s/%s/%s-%s-%s", org, name, org, name, branch)
			var pre []job
			for _, test := range []string{"unit", "lint", "images", "e2e-aws", "e2e-gcp", "e2e-aws-upgrade"} {
				j := job{kind: "presubmits", repo: repo, branch: branch, name: fmt.Sprintf("pull-ci-%s-%s-%s-%s", org, name, branch, test)}
				j.labels = map[string]string{"ci.openshift.io/generator": "prowgen", "pj-rehearse.openshift.io/can-be-rehearsed": "true"}
				switch {
				case strings.HasPrefix(test, "e2e-aws"):
					j.labels["ci-operator.openshift.io/cloud"] = "aws"
					j.labels["ci-operator.openshift.io/cloud-cluster-profile"] = "aws"
				case test == "e2e-gcp":
					j.labels["ci-operator.openshift.io/cloud"] = "gcp"
					j.labels["ci-operator.openshift.io/cloud-cluster-profile"] = "gcp"
				}
				pre = append(pre, j)
			}
			switch (r + b) % 5 {
			case 0:
				pre = append(pre, job{kind: "presubmits", repo: repo, branch: branch, name: fmt.Sprintf("pull-ci-%s-%s-%s-e2e-aws-arm64", org, name, branch),
					labels: map[string]string{"capability/arm64": "arm64", "ci-operator.openshift.io/cloud": "aws"}})
			case 1:
				pre = append(pre, job{kind: "presubmits", repo: repo, branch: branch, name: fmt.Sprintf("pull-ci-%s-%s-%s-e2e-metal-ipi", org, name, branch),
					labels: map[string]string{"ci-operator.openshift.io/cloud": "equinix-ocp-metal", "ci-operator.openshift.io/cloud-cluster-profile": "equinix-ocp-metal"}})
			case 2:
				pre = append(pre, job{kind: "presubmits", repo: repo, branch: branch, name: fmt.Sprintf("pull-ci-%s-%s-%s-e2e-kubevirt", org, name, branch),
					labels: map[string]string{"devices.kubevirt.io/kvm": "true"}})
			case 3:
				pre = append(pre, job{kind: "presubmits", repo: repo, branch: branch, name: fmt.Sprintf("pull-ci-%s-%s-%s-e2e-vsphere", org, name, branch),
					labels: map[string]string{"ci-operator.openshift.io/cluster": "vsphere02", "ci-operator.openshift.io/cloud": "vsphere"}})
			case 4:
				pre = append(pre, job{kind: "presubmits", repo: repo, branch: branch, name: fmt.Sprintf("pull-ci-%s-%s-%s-e2e-intranet", org, name, branch),
					labels: map[string]string{"capability/intranet": "intranet", "dptp.openshift.io/ssh-bastion": "true"}})
			}
			files[base+"-presubmits.yaml"] = pre
			files[base+"-postsubmits.yaml"] = []job{{kind: "postsubmits", repo: repo, branch: branch, name: fmt.Sprintf("branch-ci-%s-%s-%s-images", org, name, branch)}}
			if b == 0 {
				files[base+"-periodics.yaml"] = []job{
					{kind: "periodics", name: fmt.Sprintf("periodic-ci-%s-%s-%s-e2e-aws-nightly", org, name, branch), labels: map[string]string{"ci-operator.openshift.io/cloud": "aws"}},
					{kind: "periodics", name: fmt.Sprintf("periodic-ci-%s-%s-%s-unit-weekly", org, name, branch)},
				}
			}
		}
	}
	// OpenShift CI's own jobs: the release repo's applies and dry runs
	// (group app.ci by job name), the infra periodics (app.ci by path),
	// cluster upgrades, and files other groups take by path.
	release := "openshift/release/openshift-release-master-presubmits.yaml"
	for _, c := range []string{"app-ci-config", "build01", "build02", "build03", "build04", "build05"} {
		files[release] = append(files[release], job{kind: "presubmits", repo: "openshift/release", branch: "master", name: "pull-ci-openshift-release-master-" + c + "-dry"})
	}
	files[release] = append(files[release], job{kind: "presubmits", repo: "openshift/release", branch: "master", name: "pull-ci-openshift-release-master-config"})
	files["openshift/release/openshift-release-master-postsubmits.yaml"] = []job{
		{kind: "postsubmits", repo: "openshift/release", branch: "master", name: "branch-ci-openshift-release-master-build01-apply"},
		{kind: "postsubmits", repo: "openshift/release", branch: "master", name: "branch-ci-openshift-release-master-build04-apply"},
		{kind: "postsubmits", repo: "openshift/release", branch: "master", name: "branch-ci-openshift-release-master-config-change-trigger"},
	}
	files["infra-periodics.yaml"] = []job{
		{kind: "periodics", name: "periodic-openshift-release-master-build01-apply"},
		{kind: "periodics", name: "periodic-openshift-release-master-build04-apply"},
		{kind: "periodics", name: "periodic-ci-openshift-release-master-stale-issues"},
		{kind: "periodics", name: "periodic-build01-upgrade"},
		{kind: "periodics", name: "periodic-build04-upgrade"},
		{kind: "periodics", name: "periodic-ipi-deprovision-aws"},
		{kind: "periodics", name: "periodic-prow-auto-config-brancher"},
	}
	files["infra-image-mirroring.yaml"] = []job{{kind: "periodics", name: "periodic-image-mirroring-openshift"}}
	files["openshift/release/openshift-release-infra-periodics.yaml"] = []job{{kind: "periodics", name: "periodic-openshift-release-fast-forward"}}
	files["openshift/openshift-azure/openshift-openshift-azure-infra-periodics.yaml"] = []job{{kind: "periodics", name: "periodic-openshift-azure-cleanup"}}
	files["openshift/release/openshift-release-release-4.18-periodics.yaml"] = []job{
		{kind: "periodics", name: "release-openshift-origin-installer-launch-metal"},
		{kind: "periodics", name: "release-openshift-origin-installer-launch-aws"},
	}

	if err := os.RemoveAll("jobs"); err != nil {
		panic(err)
	}
	names := make([]string, 0, len(files))
	for f := range files {
		names = append(names, f)
	}
	sort.Strings(names)
	for _, f := range names {
		write(filepath.Join("jobs", f), render(files[f]))
	}
	write("_config.yaml", config(names))
}

// render writes jobs as prowgen does: keys sorted, two-space indents.
func render(js []job) string {
	var b strings.Builder
	byKind := map[string][]job{}
	for _, j := range js {
		byKind[j.kind] = append(byKind[j.kind], j)
	}
	for _, kind := range []string{"periodics", "postsubmits", "presubmits"} {
		list := byKind[kind]
		if len(list) == 0 {
			continue
		}
		fmt.Fprintf(&b, "%s:\n", kind)
		indent := ""
		if kind != "periodics" {
			fmt.Fprintf(&b, "  %s:\n", list[0].repo)
			indent = "  "
		}
		for _, j := range list {
			fmt.Fprintf(&b, "%s- agent: kubernetes\n", indent)
			if kind == "presubmits" {
				fmt.Fprintf(&b, "%s  always_run: true\n", indent)
			}
			if kind != "periodics" {
				fmt.Fprintf(&b, "%s  branches:\n%s  - ^%s$\n", indent, indent, j.branch)
			}
			fmt.Fprintf(&b, "%s  cluster: build01\n", indent)
			if kind == "presubmits" {
				test := j.name[strings.LastIndex(j.name, j.branch)+len(j.branch)+1:]
				fmt.Fprintf(&b, "%s  context: ci/prow/%s\n", indent, test)
			}
			if kind == "periodics" {
				fmt.Fprintf(&b, "%s  cron: 0 3 * * *\n", indent)
			}
			fmt.Fprintf(&b, "%s  decorate: true\n", indent)
			if len(j.labels) > 0 {
				fmt.Fprintf(&b, "%s  labels:\n", indent)
				keys := make([]string, 0, len(j.labels))
				for k := range j.labels {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				for _, k := range keys {
					fmt.Fprintf(&b, "%s    %s: %q\n", indent, k, j.labels[k])
				}
			}
			fmt.Fprintf(&b, "%s  name: %s\n", indent, j.name)
			fmt.Fprintf(&b, "%s  spec:\n%s    containers:\n%s    - args:\n%s      - --target=%s\n%s      command:\n%s      - ci-operator\n%s      image: ci-operator:latest\n",
				indent, indent, indent, indent, j.name, indent, indent, indent)
		}
	}
	return b.String()
}

// config writes the dispatcher config: the real file's keys in its order
// (sigs.k8s.io/yaml sorts them), its groups, and a buildFarm listing the
// generated files plus thousands of names of files the job config lacks.
func config(files []string) string {
	farm := map[string]map[string][]string{
		"aws": {"build01": nil, "build03": nil, "build05": nil, "build06": nil, "build09": nil},
		"gcp": {"build02": nil, "build04": nil},
	}
	order := []struct{ provider, cluster string }{
		{"aws", "build01"}, {"aws", "build03"}, {"aws", "build05"}, {"gcp", "build02"},
		{"aws", "build06"}, {"aws", "build09"}, {"gcp", "build04"},
	}
	i := 0
	add := func(base string) {
		o := order[i%len(order)]
		farm[o.provider][o.cluster] = append(farm[o.provider][o.cluster], base)
		i++
	}
	for _, f := range files {
		switch base := filepath.Base(f); base {
		case "infra-periodics.yaml", "infra-image-mirroring.yaml", "openshift-openshift-azure-infra-periodics.yaml":
			// taken by a group path: not in the buildFarm
		default:
			add(base)
		}
	}
	for n := range 3000 {
		add(fmt.Sprintf("retired-org%03d-repo%02d-release-4.%d-%s.yaml", n/30, n%30, 1+n%17, []string{"presubmits", "postsubmits", "periodics"}[n%3]))
	}
	var b strings.Builder
	b.WriteString("buildFarm:\n")
	for _, p := range []string{"aws", "gcp"} {
		fmt.Fprintf(&b, "  %s:\n", p)
		clusters := make([]string, 0, len(farm[p]))
		for c := range farm[p] {
			clusters = append(clusters, c)
		}
		sort.Strings(clusters)
		for _, c := range clusters {
			fmt.Fprintf(&b, "    %s:\n      filenames:\n", c)
			for _, f := range farm[p][c] {
				fmt.Fprintf(&b, "      - %s\n", f)
			}
		}
	}
	b.WriteString(`cloudMapping:
  equinix-ocp-metal: aws
  openstack-vexxhost: aws
default: build01
determineE2EByJob: true
groups:
  app.ci:
    jobs:
    - branch-ci-openshift-release-master-build01-apply
    - branch-ci-openshift-release-master-build04-apply
    - branch-ci-openshift-release-master-config-change-trigger
    - periodic-ci-openshift-release-master-stale-issues
    - periodic-openshift-release-master-build01-apply
    - periodic-openshift-release-master-build04-apply
    - pull-ci-openshift-release-master-app-ci-config-dry
    - pull-ci-openshift-release-master-build01-dry
    - pull-ci-openshift-release-master-build02-dry
    - pull-ci-openshift-release-master-build03-dry
    - pull-ci-openshift-release-master-build04-dry
    - pull-ci-openshift-release-master-build05-dry
    - pull-ci-openshift-release-master-config
    paths:
    - infra-image-mirroring.yaml
    - '[^-]infra-periodics.yaml'
  build01:
    jobs:
    - periodic-build01-upgrade
    - periodic-ipi-deprovision-aws
    - release-openshift-origin-installer-launch-aws
    paths:
    - openshift-openshift-azure-infra-periodics.yaml
  build05:
    jobs:
    - release-openshift-origin-installer-launch-metal
kvm:
- build02
sshBastion: build01
`)
	return b.String()
}

func write(path, content string) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		panic(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		panic(err)
	}
}
