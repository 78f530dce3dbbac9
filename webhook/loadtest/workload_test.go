package loadtest

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/config"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine/enginetest"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
)

// The shape of the generated workload.
const (
	jobsPerFile     = 10
	numClusters     = 10
	numCapabilities = 6 // arm64, intranet, gpu, sshd-bastion, rce, large-memory
	workloadSeed    = 1
)

// workload is a job config tree, a cluster config, a dispatcher config and a
// demand file written to disk, as serve reads them.
type workload struct {
	dispatcherConfig, clusterConfig, jobConfigDir, demandFile string

	jobs                []genJob // every job of the job config, jenkins ones too
	files               int
	presubmits, periods int
	clusters            int
}

// genJob is one job of the generated job config.
type genJob struct {
	name    string
	file    string    // relative to the job config dir
	typ     jobs.Type // presubmit or periodic
	agent   string
	cluster string      // the job config's cluster field, if any (the manual cluster)
	labels  [][2]string // the job's labels, sorted by key
}

// writeWorkload writes a workload of n jobs under dir. The jobs, the
// clusters, the dispatcher config and the demand are enginetest.Workload's
// (the same for the same n): ~10 jobs per file over three providers' ten
// clusters build01..build10 of capacities 30..100 (build04 blocked), ~5 % of
// jobs needing a capability (capability/arm64 among them), a few pinned with
// ci-operator.openshift.io/cluster, needing kvm, no-builds, a cloud or the ssh
// bastion, on the manual cluster or run by jenkins. One file in ten holds
// periodics instead of presubmits.
func writeWorkload(dir string, n int) (*workload, error) {
	files := max(1, n/jobsPerFile)
	in := enginetest.Workload(n, files, numClusters, numCapabilities, workloadSeed)
	w := &workload{
		dispatcherConfig: filepath.Join(dir, "dispatcher.yaml"),
		clusterConfig:    filepath.Join(dir, "clusters.yaml"),
		jobConfigDir:     filepath.Join(dir, "jobs"),
		demandFile:       filepath.Join(dir, "demand.yaml"),
		jobs:             make([]genJob, 0, len(in.Jobs)),
	}
	labels := jobs.DefaultLabels()

	// Jobs, renamed to periodics in one presubmit file of ten (never in
	// openshift-priv, whose presubmit files a group path matches).
	rename := map[string]string{}
	byFile := map[string][]int{}
	for _, j := range in.Jobs {
		g := genJob{name: j.Name, file: j.File, typ: jobs.Presubmit, agent: j.Agent, cluster: j.Cluster}
		if fileIndex(j.File)%10 == 5 && !strings.HasPrefix(j.File, "openshift-priv/") {
			g.typ = jobs.Periodic
			g.file = strings.TrimSuffix(j.File, "-presubmits.yaml") + "-periodics.yaml"
			g.name = "periodic-ci-" + strings.TrimPrefix(j.Name, "pull-ci-")
			rename[j.Name] = g.name
		}
		r := j.Requirements
		for _, c := range r.Capabilities {
			g.labels = append(g.labels, [2]string{labels.CapabilityPrefix + c, c})
		}
		if r.Pin != "" {
			g.labels = append(g.labels, [2]string{labels.Cluster, r.Pin})
		}
		if r.KVM {
			g.labels = append(g.labels, [2]string{labels.KVM, "1"})
		}
		if r.NoBuilds {
			g.labels = append(g.labels, [2]string{labels.NoBuilds, "true"})
		}
		if r.SSHBastion {
			g.labels = append(g.labels, [2]string{labels.SSHBastion, "true"})
		}
		if r.Cloud != "" {
			g.labels = append(g.labels, [2]string{labels.Cloud, r.Cloud})
		}
		slices.SortFunc(g.labels, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
		if g.typ == jobs.Periodic {
			w.periods++
		} else {
			w.presubmits++
		}
		byFile[g.file] = append(byFile[g.file], len(w.jobs))
		w.jobs = append(w.jobs, g)
	}
	renamed := func(name string) string {
		if r, ok := rename[name]; ok {
			return r
		}
		return name
	}

	// The job config tree.
	for file, idx := range byFile {
		var b bytes.Buffer
		if w.jobs[idx[0]].typ == jobs.Periodic {
			b.WriteString("periodics:\n")
			for _, i := range idx {
				writeJob(&b, "", w.jobs[i])
			}
		} else {
			// openshift/repo0001/openshift-repo0001-release-4.1-presubmits.yaml
			org, rest, _ := strings.Cut(file, "/")
			repo, _, _ := strings.Cut(rest, "/")
			fmt.Fprintf(&b, "presubmits:\n  %s/%s:\n", org, repo)
			for _, i := range idx {
				writeJob(&b, "  ", w.jobs[i])
			}
		}
		p := filepath.Join(w.jobConfigDir, filepath.FromSlash(file))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			return nil, err
		}
	}
	w.files = len(byFile)

	// The dispatcher config, its group's job names renamed as the jobs were.
	dc := *in.Config
	dc.Groups = map[string]config.Group{}
	for cluster, g := range in.Config.Groups {
		ng := config.Group{Paths: g.Paths}
		for _, j := range g.Jobs {
			ng.Jobs = append(ng.Jobs, renamed(j))
		}
		dc.Groups[cluster] = ng
	}
	if err := writeYAML(w.dispatcherConfig, "# Dispatcher config of the load test (enginetest.Workload).\n", &dc); err != nil {
		return nil, err
	}

	// The cluster config: provider -> clusters.
	for _, list := range in.Clusters.Providers {
		w.clusters += len(list)
	}
	if err := writeYAML(w.clusterConfig, "# Cluster config of the load test (enginetest.Workload).\n", in.Clusters.Providers); err != nil {
		return nil, err
	}

	// The demand file: job name -> demand.
	var b bytes.Buffer
	b.WriteString("# Job demand of the load test (enginetest.Workload).\n")
	names := make([]string, 0, len(in.Demand))
	for name := range in.Demand {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		fmt.Fprintf(&b, "%s: %s\n", renamed(name), strconv.FormatFloat(in.Demand[name], 'f', -1, 64))
	}
	if err := os.WriteFile(w.demandFile, b.Bytes(), 0o644); err != nil {
		return nil, err
	}
	return w, nil
}

// writeJob writes one job as an item of a presubmits or periodics list,
// indented by indent, in the format of openshift/release's ci-operator/jobs.
func writeJob(b *bytes.Buffer, indent string, j genJob) {
	fmt.Fprintf(b, "%s- name: %s\n", indent, j.name)
	fmt.Fprintf(b, "%s  agent: %s\n", indent, j.agent)
	if j.cluster != "" {
		fmt.Fprintf(b, "%s  cluster: %s\n", indent, j.cluster)
	}
	test := strings.TrimPrefix(strings.TrimPrefix(j.name, "pull-ci-"), "periodic-ci-")
	if j.typ == jobs.Periodic {
		fmt.Fprintf(b, "%s  interval: 24h\n", indent)
	} else {
		release := strings.TrimSuffix(j.file[strings.LastIndex(j.file, "release-"):], "-presubmits.yaml")
		fmt.Fprintf(b, "%s  always_run: true\n", indent)
		fmt.Fprintf(b, "%s  branches: [%s]\n", indent, strconv.Quote("^"+release+"$"))
		fmt.Fprintf(b, "%s  context: ci/prow/%s\n", indent, test)
		fmt.Fprintf(b, "%s  rerun_command: /test %s\n", indent, test)
	}
	if len(j.labels) > 0 {
		fmt.Fprintf(b, "%s  labels:\n", indent)
		for _, l := range j.labels {
			fmt.Fprintf(b, "%s    %s: %s\n", indent, l[0], strconv.Quote(l[1]))
		}
	}
	if j.agent != jobs.Agent {
		return
	}
	fmt.Fprintf(b, "%s  decorate: true\n", indent)
	fmt.Fprintf(b, "%s  spec:\n", indent)
	fmt.Fprintf(b, "%s    containers:\n", indent)
	fmt.Fprintf(b, "%s    - image: ci-operator:latest\n", indent)
	fmt.Fprintf(b, "%s      command: [ci-operator]\n", indent)
	fmt.Fprintf(b, "%s      args: [--target=%s]\n", indent, test)
	fmt.Fprintf(b, "%s      resources:\n", indent)
	fmt.Fprintf(b, "%s        requests: {cpu: 10m}\n", indent)
}

// labelsJSON returns the job's labels as members of a JSON object, each
// preceded by a comma: `,"capability/arm64":"arm64"`.
func (j genJob) labelsJSON() string {
	var b strings.Builder
	for _, l := range j.labels {
		b.WriteString(",")
		b.WriteString(strconv.Quote(l[0]))
		b.WriteString(":")
		b.WriteString(strconv.Quote(l[1]))
	}
	return b.String()
}

// fileIndex returns the index enginetest.Workload numbered a job file by:
// openshift/repoNNNN/openshift-repoNNNN-release-4.K-presubmits.yaml is 4*NNNN+K.
func fileIndex(file string) int {
	base := path.Base(file)
	i := strings.Index(base, "-repo")
	k := strings.Index(base, "-release-4.")
	if i < 0 || k < 0 {
		return 0
	}
	repo, err1 := strconv.Atoi(base[i+len("-repo") : k])
	rel, err2 := strconv.Atoi(strings.TrimSuffix(base[k+len("-release-4."):], "-presubmits.yaml"))
	if err1 != nil || err2 != nil {
		return 0
	}
	return 4*repo + rel
}

func writeYAML(p, header string, v any) error {
	data, err := yaml.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(p, append([]byte(header), data...), 0o644)
}
