package jobs

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// writeTree generates a job config tree of files files with jobsPerFile jobs
// each, nested org/repo as in openshift/release, cycling through presubmits,
// postsubmits and periodics, with capability, pin and kvm labels sprinkled in.
func writeTree(tb testing.TB, dir string, files, jobsPerFile int) {
	tb.Helper()
	for f := range files {
		org, repo := fmt.Sprintf("org%02d", f%50), fmt.Sprintf("repo%04d", f)
		prefix := fmt.Sprintf("%s-%s-main", org, repo)
		var b strings.Builder
		kind := []string{"presubmits", "postsubmits", "periodics"}[f%3]
		switch kind {
		case "presubmits", "postsubmits":
			fmt.Fprintf(&b, "%s:\n  %s/%s:\n", kind, org, repo)
		default:
			b.WriteString("periodics:\n")
		}
		for j := range jobsPerFile {
			fmt.Fprintf(&b, "  - name: %s-%s-job%02d\n", kind, prefix, j)
			b.WriteString("    branches: [^main$]\n    cron: '@daily'\n    labels:\n")
			b.WriteString("      ci.openshift.io/generator: prowgen\n")
			switch j % 5 {
			case 1:
				b.WriteString("      capability/arm64: arm64\n")
			case 2:
				b.WriteString("      ci-operator.openshift.io/cluster: build05\n")
			case 3:
				b.WriteString("      devices.kubevirt.io/kvm: \"true\"\n")
			}
			b.WriteString("    spec:\n      containers:\n      - image: ci-operator:latest\n        command: [ci-operator]\n        args: [--target=e2e]\n")
		}
		writeFile(tb, filepath.Join(dir, org, repo, prefix+"-"+kind+".yaml"), b.String())
	}
}

// BenchmarkLoad loads a generated tree of 5,000 files and 50,000 jobs.
func BenchmarkLoad(b *testing.B) {
	const files, jobsPerFile = 5000, 10
	dir := b.TempDir()
	writeTree(b, dir, files, jobsPerFile)
	b.ResetTimer()
	for b.Loop() {
		got, err := Load(dir, DefaultLabels())
		if err != nil {
			b.Fatal(err)
		}
		if len(got) != files*jobsPerFile {
			b.Fatalf("loaded %d jobs, want %d", len(got), files*jobsPerFile)
		}
	}
}
