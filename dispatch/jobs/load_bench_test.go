package jobs

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// Sizes of the generated OpenShift-CI-shaped tree: 500 repos in 25 orgs, two
// branches each, a presubmits, a postsubmits and a periodics file per branch:
// 3,000 files and 31,500 jobs, about what openshift/release ci-operator/jobs
// holds.
const (
	benchRepos            = 500
	benchBranches         = 2
	benchPresubmitsPerBr  = 21
	benchPostsubmitsPerBr = 3
	benchPeriodicsPerBr   = 7 // and one more on every other branch
)

// benchTests are the ci-operator test names the generated jobs cycle through.
var benchTests = []string{
	"e2e-aws-ovn", "unit", "images", "lint", "verify", "e2e-gcp-ovn", "e2e-azure-ovn",
	"e2e-metal-ipi-ovn", "e2e-aws-ovn-upgrade", "security", "e2e-aws-ovn-serial",
	"e2e-vsphere-ovn", "verify-deps", "e2e-aws-ovn-fips", "e2e-openstack-ovn", "okd-scos-images",
	"e2e-aws-ovn-single-node", "e2e-hypershift", "e2e-agnostic-ovn-cmd", "e2e-aws-ovn-arm64",
	"coverage", "e2e-ibmcloud-ovn", "e2e-nutanix-ovn", "e2e-aws-ovn-techpreview",
}

// benchClouds are the cluster profiles' clouds, by test index.
var benchClouds = []string{"aws", "", "", "", "", "gcp", "azure", "equinix-ocp-metal", "aws", "", "aws", "vsphere", "", "aws", "openstack-vexxhost", ""}

// writeOpenShiftTree writes, under dir, a job config tree shaped like
// openshift/release ci-operator/jobs: org/repo folders holding
// org-repo-branch-{presubmits,postsubmits,periodics}.yaml files whose jobs
// carry prowgen's labels (cloud, capability/, cluster pins, kvm, no-builds on
// some), decoration config and full ci-operator pod specs. repos repos with
// branches branches each give repos*branches*3 files; it returns the number
// of jobs written.
func writeOpenShiftTree(tb testing.TB, dir string, repos, branches int) int {
	return writeOpenShiftTreeStyle(tb, dir, repos, branches, blockStyle)
}

// A treeStyle is how a generated tree writes its lists of scalars.
type treeStyle int

const (
	// blockStyle is prowgen's: every list a block sequence.
	blockStyle treeStyle = iota
	// flowStyle is the hand-written one: lists of scalars and the
	// resource requests in flow style ("command: [ci-operator]",
	// "args: [\"--a\", '--b']", "requests: {cpu: 10m}").
	flowStyle
)

func (s treeStyle) String() string { return [...]string{"block", "flow"}[s] }

// writeOpenShiftTreeStyle is writeOpenShiftTree with the lists of scalars
// written in style.
func writeOpenShiftTreeStyle(tb testing.TB, dir string, repos, branches int, style treeStyle) int {
	tb.Helper()
	jobs := 0
	var b strings.Builder
	for r := range repos {
		org, repo := fmt.Sprintf("org%02d", r%25), fmt.Sprintf("repo-%04d", r)
		for br := range branches {
			branch := "main"
			if br > 0 {
				branch = fmt.Sprintf("release-4.%d", 10+br)
			}
			prefix := fmt.Sprintf("%s-%s-%s", org, repo, branch)
			folder := filepath.Join(dir, org, repo)
			seed := r*branches + br

			b.Reset()
			fmt.Fprintf(&b, "presubmits:\n  %s/%s:\n", org, repo)
			for j := range benchPresubmitsPerBr {
				writeBenchPresubmit(&b, org, repo, branch, seed+j, j)
			}
			writeFile(tb, filepath.Join(folder, prefix+"-presubmits.yaml"), style.apply(b.String()))
			jobs += benchPresubmitsPerBr

			b.Reset()
			fmt.Fprintf(&b, "postsubmits:\n  %s/%s:\n", org, repo)
			for j := range benchPostsubmitsPerBr {
				writeBenchPostsubmit(&b, org, repo, branch, seed+j, j)
			}
			writeFile(tb, filepath.Join(folder, prefix+"-postsubmits.yaml"), style.apply(b.String()))
			jobs += benchPostsubmitsPerBr

			b.Reset()
			b.WriteString("periodics:\n")
			n := benchPeriodicsPerBr + seed%2
			for j := range n {
				writeBenchPeriodic(&b, org, repo, branch, seed+j, j)
			}
			writeFile(tb, filepath.Join(folder, prefix+"-periodics.yaml"), style.apply(b.String()))
			jobs += n
		}
	}
	return jobs
}

// flowKeys are the keys whose block lists of scalars (and, for requests, a
// map of scalars) flowStyle writes in flow style.
var flowKeys = map[string]bool{"branches": true, "args": true, "command": true, "requests": true}

// apply rewrites a block-style job file in style.
func (s treeStyle) apply(file string) string {
	if s == blockStyle {
		return file
	}
	lines := strings.SplitAfter(file, "\n")
	var b strings.Builder
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		text := strings.TrimLeft(line, " ")
		col := len(line) - len(text)
		if strings.HasPrefix(text, "- ") {
			text, col = text[2:], col+2
		}
		key, ok := strings.CutSuffix(text, ":\n")
		if !ok || !flowKeys[key] {
			b.WriteString(line)
			continue
		}
		// The entries: "- x" at the key's column or deeper, or "k: v"
		// deeper.
		var items []string
		mapping := false
		for i+1 < len(lines) {
			next := strings.TrimLeft(lines[i+1], " ")
			ncol := len(lines[i+1]) - len(next)
			item := strings.TrimSuffix(next, "\n")
			switch {
			case ncol >= col && strings.HasPrefix(item, "- ") && !strings.Contains(item, ": "):
				item = item[2:]
				if key == "args" && len(items)%2 == 0 {
					item = `"` + item + `"`
				} else if key == "args" {
					item = "'" + item + "'"
				}
			case ncol > col && strings.Contains(item, ": "):
				mapping = true
			default:
				item = ""
			}
			if item == "" {
				break
			}
			items = append(items, item)
			i++
		}
		b.WriteString(strings.TrimSuffix(line, "\n"))
		if mapping {
			b.WriteString(" {" + strings.Join(items, ", ") + "}\n")
		} else {
			b.WriteString(" [" + strings.Join(items, ", ") + "]\n")
		}
	}
	return b.String()
}

// writeBenchLabels writes a prowgen job's labels at indent, varied by seed.
func writeBenchLabels(b *strings.Builder, indent string, seed, test int) {
	fmt.Fprintf(b, "%slabels:\n", indent)
	if c := benchClouds[test%len(benchClouds)]; c != "" {
		fmt.Fprintf(b, "%s  ci-operator.openshift.io/cloud: %s\n", indent, c)
		fmt.Fprintf(b, "%s  ci-operator.openshift.io/cloud-cluster-profile: %s\n", indent, c)
	}
	switch seed % 13 {
	case 1:
		fmt.Fprintf(b, "%s  capability/arm64: arm64\n", indent)
	case 4:
		fmt.Fprintf(b, "%s  ci-operator.openshift.io/cluster: build%02d\n", indent, seed%11+1)
	case 6:
		fmt.Fprintf(b, "%s  devices.kubevirt.io/kvm: \"true\"\n", indent)
	case 8:
		fmt.Fprintf(b, "%s  capability/intranet: intranet\n%s  capability/sshd-bastion: sshd-bastion\n", indent, indent)
	case 11:
		fmt.Fprintf(b, "%s  ci.openshift.io/no-builds: \"true\"\n", indent)
	}
	if seed%3 == 0 {
		fmt.Fprintf(b, "%s  ci-operator.openshift.io/variant: okd-scos\n", indent)
	}
	fmt.Fprintf(b, "%s  ci.openshift.io/generator: prowgen\n", indent)
	fmt.Fprintf(b, "%s  pj-rehearse.openshift.io/can-be-rehearsed: \"true\"\n", indent)
}

// writeBenchSpec writes a ci-operator pod spec at indent.
func writeBenchSpec(b *strings.Builder, indent, target string, seed int) {
	r := strings.NewReplacer("\n", "\n"+indent)
	spec := `spec:
  containers:
  - args:
    - --gcs-upload-secret=/secrets/gcs/service-account.json
    - --image-import-pull-secret=/etc/pull-secret/.dockerconfigjson
    - --lease-server-credentials-file=/etc/boskos/credentials
    - --report-credentials-file=/etc/report/credentials
    - --secret-dir=/secrets/ci-pull-credentials
    - --secret-dir=/usr/local/TARGET-cluster-profile
    - --target=TARGET
    - --variant=okd-scos
    command:
    - ci-operator
    env:
    - name: UNRESOLVED_CONFIG
      valueFrom:
        configMapKeyRef:
          key: SEED-config.yaml
          name: ci-operator-configs
    image: ci-operator:latest
    imagePullPolicy: Always
    name: ""
    resources:
      requests:
        cpu: 10m
        memory: 200Mi
    volumeMounts:
    - mountPath: /etc/boskos
      name: boskos
      readOnly: true
    - mountPath: /secrets/ci-pull-credentials
      name: ci-pull-credentials
      readOnly: true
    - mountPath: /usr/local/TARGET-cluster-profile
      name: cluster-profile
    - mountPath: /secrets/gcs
      name: gcs-credentials
      readOnly: true
    - mountPath: /etc/pull-secret
      name: pull-secret
      readOnly: true
    - mountPath: /etc/report
      name: result-aggregator
      readOnly: true
  serviceAccountName: ci-operator
  volumes:
  - name: boskos
    secret:
      items:
      - key: credentials
        path: credentials
      secretName: boskos-credentials
  - name: ci-pull-credentials
    secret:
      secretName: ci-pull-credentials
  - name: cluster-profile
    secret:
      secretName: cluster-secrets-TARGET
  - name: pull-secret
    secret:
      secretName: registry-pull-credentials
  - name: result-aggregator
    secret:
      secretName: result-aggregator
`
	spec = strings.NewReplacer("TARGET", target, "SEED", fmt.Sprint(seed)).Replace(spec)
	b.WriteString(indent)
	b.WriteString(strings.TrimSuffix(r.Replace(spec), indent))
}

// writeBenchPresubmit writes the j-th presubmit of a prowgen presubmits file.
func writeBenchPresubmit(b *strings.Builder, org, repo, branch string, seed, j int) {
	test := benchTests[j%len(benchTests)]
	name := fmt.Sprintf("pull-ci-%s-%s-%s-%s", org, repo, branch, test)
	if j >= len(benchTests) {
		name += fmt.Sprint(j)
	}
	// Hand-written jobs may leave the agent out.
	if seed%17 != 5 {
		b.WriteString("  - agent: kubernetes\n    always_run")
	} else {
		b.WriteString("  - always_run")
	}
	fmt.Fprintf(b, ": %t\n    branches:\n    - ^%s$\n    - ^%s-\n", j%4 != 3, branch, branch)
	fmt.Fprintf(b, "    cluster: build%02d\n    context: ci/prow/%s\n", seed%11+1, test)
	b.WriteString("    decorate: true\n    decoration_config:\n      skip_cloning: true\n      timeout: 4h0m0s\n")
	writeBenchLabels(b, "    ", seed, j)
	fmt.Fprintf(b, "    name: %s\n    rerun_command: /test %s\n", name, test)
	if j%4 == 3 {
		b.WriteString("    run_if_changed: ^(pkg/.*|cmd/.*)$\n")
	}
	writeBenchSpec(b, "    ", test, seed)
	fmt.Fprintf(b, "    trigger: (?m)^/test( | .* )(%s|remaining-required),?($|\\s.*)\n", test)
}

// writeBenchPostsubmit writes the j-th postsubmit of a prowgen postsubmits file.
func writeBenchPostsubmit(b *strings.Builder, org, repo, branch string, seed, j int) {
	test := []string{"images", "okd-scos-images", "coverage"}[j%3]
	fmt.Fprintf(b, "  - agent: kubernetes\n    always_run: true\n    branches:\n    - ^%s$\n", branch)
	fmt.Fprintf(b, "    cluster: build%02d\n    decorate: true\n    decoration_config:\n      skip_cloning: true\n", seed%11+1)
	writeBenchLabels(b, "    ", seed, j)
	b.WriteString("      ci-operator.openshift.io/is-promotion: \"true\"\n")
	fmt.Fprintf(b, "    max_concurrency: 1\n    name: branch-ci-%s-%s-%s-%s\n", org, repo, branch, test)
	writeBenchSpec(b, "    ", test, seed)
}

// writeBenchPeriodic writes the j-th periodic of a prowgen periodics file.
func writeBenchPeriodic(b *strings.Builder, org, repo, branch string, seed, j int) {
	test := benchTests[(j+3)%len(benchTests)]
	if seed%19 == 7 {
		b.WriteString("- agent: jenkins\n")
	} else {
		b.WriteString("- agent: kubernetes\n")
	}
	fmt.Fprintf(b, "  cluster: build%02d\n", seed%11+1)
	if j%2 == 0 {
		fmt.Fprintf(b, "  cron: %d %d * * %d\n", seed%60, j%24, j%7)
	} else {
		b.WriteString("  interval: 24h\n")
	}
	b.WriteString("  decorate: true\n  decoration_config:\n    skip_cloning: true\n    timeout: 6h0m0s\n")
	fmt.Fprintf(b, "  extra_refs:\n  - base_ref: %s\n    org: %s\n    repo: %s\n", branch, org, repo)
	writeBenchLabels(b, "  ", seed, j+3)
	fmt.Fprintf(b, "  name: periodic-ci-%s-%s-%s-%s-%d\n", org, repo, branch, test, j)
	writeBenchSpec(b, "  ", test, seed)
}

// BenchmarkLoad loads a generated OpenShift-CI-shaped tree of 3,000 files and
// 31,500 jobs, written in prowgen's block style and in the hand-written flow
// style: both should read at the same speed.
func BenchmarkLoad(b *testing.B) {
	for _, style := range []treeStyle{blockStyle, flowStyle} {
		b.Run(style.String(), func(b *testing.B) { benchmarkLoad(b, Load, style) })
	}
}

// BenchmarkLoadProwReader loads the block-style tree the old way, through
// prow's ReadJobConfig, for comparison.
func BenchmarkLoadProwReader(b *testing.B) {
	benchmarkLoad(b, loadWithProwReader, blockStyle)
}

func benchmarkLoad(b *testing.B, load func(string, Labels) ([]Job, error), style treeStyle) {
	dir := b.TempDir()
	want := writeOpenShiftTreeStyle(b, dir, benchRepos, benchBranches, style)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		got, err := load(dir, DefaultLabels())
		if err != nil {
			b.Fatal(err)
		}
		if len(got) != want {
			b.Fatalf("loaded %d jobs, want %d", len(got), want)
		}
	}
	b.ReportMetric(float64(want), "jobs/op")
}
