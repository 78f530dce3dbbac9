package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/config"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/store"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

const planTestdata = "../../dispatch/testdata"

func planArgs(extra ...string) []string {
	return append([]string{
		"--dispatcher-config", filepath.Join(planTestdata, "dispatcher.yaml"),
		"--cluster-config", filepath.Join(planTestdata, "clusters.yaml"),
		"--job-config", filepath.Join(planTestdata, "jobs"),
		"--demand-file", filepath.Join(planTestdata, "demand.yaml"),
	}, extra...)
}

func runPlanTest(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = plan(context.Background(), args, &out, &errOut)
	return out.String(), errOut.String(), err
}

func TestPlanPrintsLoadsAndWritesTable(t *testing.T) {
	for _, format := range []string{"json", "yaml"} {
		t.Run(format, func(t *testing.T) {
			output := filepath.Join(t.TempDir(), "table."+format)
			stdout, _, err := runPlanTest(t, planArgs("--output", output, "--format", format)...)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"CLUSTER", "PROVIDER", "CAPACITY", "LOAD", "BALANCED", "FORCED", "LOAD/TARGET", "build01", "build02", "build03", "build04", "blocked", "9 jobs"} {
				if !strings.Contains(stdout, want) {
					t.Errorf("report lacks %q:\n%s", want, stdout)
				}
			}
			data, err := os.ReadFile(output)
			if err != nil {
				t.Fatal(err)
			}
			if format == "yaml" {
				if data, err = yaml.YAMLToJSON(data); err != nil {
					t.Fatal(err)
				}
			}
			var tbl table.Table
			if err := json.Unmarshal(data, &tbl); err != nil {
				t.Fatal(err)
			}
			rows := tbl.ByJob()
			if len(rows) != 9 {
				t.Errorf("table has %d rows, want 9", len(rows))
			}
			if a := rows["pull-ci-org-repo-main-e2e-gcp"]; a.Cluster != "build02" || a.Reason != table.ReasonPinned {
				t.Errorf("pinned job: %+v", a)
			}
			if a := rows["pull-ci-org-repo-main-unit"]; a.Demand != 900 {
				t.Errorf("demand file not used: %+v", a)
			}
		})
	}
}

// TestPrintReportShowsWholeLoadAgainstTarget: each cluster's row shows its
// whole load, its balanced and forced parts, its target and load/target,
// and the summary the largest load/target.
func TestPrintReportShowsWholeLoadAgainstTarget(t *testing.T) {
	rep := &engine.Report{Jobs: 30, Imbalance: 1.25, Clusters: []engine.ClusterLoad{
		{Name: "build01", Provider: "aws", Capacity: 100, Role: config.RoleBuild, Jobs: 20, Demand: 50, BalancedJobs: 12, BalancedDemand: 35,
			ForcedJobs: 8, ForcedDemand: 15, Target: 40, Ratio: 1.25},
		{Name: "app.ci", Role: config.RoleService, Jobs: 10, Demand: 7, ForcedJobs: 10, ForcedDemand: 7},
	}}
	var out bytes.Buffer
	if err := printReport(&out, rep, 10); err != nil {
		t.Fatal(err)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^CLUSTER +PROVIDER +CAPACITY +JOBS +LOAD +BALANCED +FORCED +TARGET +LOAD/TARGET +NOTE$`),
		regexp.MustCompile(`(?m)^build01 +aws +100 +20 +50\.0 +35\.0 +15\.0 +40\.0 +1\.250 *$`),
		regexp.MustCompile(`(?m)^app\.ci +0 +10 +7\.0 +0\.0 +7\.0 +0\.0 +0\.000 +service$`),
		regexp.MustCompile(`(?m)^30 jobs, max load/target 1\.250 \(all demand on usable clusters\), 0 moved$`),
	} {
		if !want.MatchString(out.String()) {
			t.Errorf("report does not match %s:\n%s", want, out.String())
		}
	}
}

func TestPlanMovesAgainstPrevious(t *testing.T) {
	dir := t.TempDir()
	first := filepath.Join(dir, "first.json")
	if _, _, err := runPlanTest(t, planArgs("--output", first)...); err != nil {
		t.Fatal(err)
	}
	prev, err := store.ReadTable(first)
	if err != nil {
		t.Fatal(err)
	}
	// Pretend the pinned job ran elsewhere before: the plan must move it back.
	for i := range prev.Assignments {
		if prev.Assignments[i].Job == "pull-ci-org-repo-main-e2e-gcp" {
			prev.Assignments[i].Cluster = "build01"
		}
	}
	previous := filepath.Join(dir, "previous.json")
	data, _ := json.Marshal(prev)
	if err := os.WriteFile(previous, data, 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, _, err := runPlanTest(t, planArgs("--previous", previous)...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout, "1 moved") {
		t.Errorf("want exactly one move:\n%s", stdout)
	}
	line := ""
	for _, l := range strings.Split(stdout, "\n") {
		if strings.HasPrefix(l, "pull-ci-org-repo-main-e2e-gcp") {
			line = l
		}
	}
	if f := strings.Fields(line); len(f) != 4 || f[1] != "build01" || f[2] != "build02" || f[3] != "pinned" {
		t.Errorf("move line %q, want job build01 build02 pinned", line)
	}
	// The same previous table as a state file.
	st, err := store.New(filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Save(&store.State{Table: prev}); err != nil {
		t.Fatal(err)
	}
	again, _, err := runPlanTest(t, planArgs("--previous", st.Path())...)
	if err != nil || again != stdout {
		t.Errorf("state file as --previous: %v\n%s\nwant\n%s", err, again, stdout)
	}
}

func TestPlanWriteBuildFarm(t *testing.T) {
	stdout, stderr, err := runPlanTest(t, planArgs("--write-build-farm")...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr, "CLUSTER") {
		t.Errorf("the report should go to stderr with --write-build-farm:\n%s", stderr)
	}
	cfg, err := config.ParseDispatcher("stdout", []byte(stdout))
	if err != nil {
		t.Fatalf("printed config does not load: %v\n%s", err, stdout)
	}
	files := map[string]string{}
	for _, clusters := range cfg.BuildFarm {
		for c, bf := range clusters {
			for _, f := range bf.Filenames {
				files[f] = c
			}
		}
	}
	if len(files) == 0 || cfg.Default != "build01" {
		t.Errorf("printed config: default %q, buildFarm %v", cfg.Default, files)
	}
}

func TestPlanFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no configs", []string{"--demand-file", "x"}, "--dispatcher-config is required"},
		{"two demand sources", planArgs("--prometheus-url", "http://127.0.0.1:1"), "are exclusive"},
		{"a cluster job pattern without a group", planArgs("--cluster-job-pattern", "^periodic-build01-upgrade$"), "captures no cluster"},
		{"a cluster job pattern that does not compile", planArgs("--cluster-job-pattern", "(unclosed"), "missing closing )"},
		{"bad format", planArgs("--format", "xml"), `--format "xml"`},
		{"bad demand file", planArgs("--demand-file", filepath.Join(planTestdata, "dispatcher.yaml")), "dispatcher.yaml"},
		{"missing previous", planArgs("--previous", "/nonexistent/table.json"), "/nonexistent/table.json"},
		{"unknown flag", planArgs("--nope"), "not defined"},
		{"tolerance below 1", planArgs("--balance-tolerance", "0.5"), "--balance-tolerance 0.5"},
		{"zero move fraction", planArgs("--max-move-fraction", "0"), "--max-move-fraction 0"},
		{"negative default demand", planArgs("--default-demand", "-1"), "--default-demand -1"},
		{"empty label", planArgs("--label-cluster", ""), "--label-cluster must not be empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runPlanTest(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestPlanLabelFlags checks that the label flags steer placement: the same job
// config read with other label names no longer sees the pin or the capability.
func TestPlanLabelFlags(t *testing.T) {
	for _, tc := range []struct {
		name       string
		args       []string
		pinned     table.Reason
		capability table.Reason
	}{
		{"defaults", nil, table.ReasonPinned, table.ReasonCapability},
		{"other names", []string{"--label-cluster", "example.com/cluster", "--label-capability-prefix", "example.com/capability-"}, table.ReasonBalanced, table.ReasonBalanced},
	} {
		t.Run(tc.name, func(t *testing.T) {
			output := filepath.Join(t.TempDir(), "table.json")
			if _, _, err := runPlanTest(t, planArgs(append(tc.args, "--output", output)...)...); err != nil {
				t.Fatal(err)
			}
			tbl, err := store.ReadTable(output)
			if err != nil {
				t.Fatal(err)
			}
			rows := tbl.ByJob()
			if got := rows["pull-ci-org-repo-main-e2e-gcp"].Reason; got != tc.pinned {
				t.Errorf("pinned job's reason = %q, want %q", got, tc.pinned)
			}
			if got := rows["pull-ci-org-repo-main-e2e-arm64"].Reason; got != tc.capability {
				t.Errorf("arm64 job's reason = %q, want %q", got, tc.capability)
			}
		})
	}
}

func TestPlanListsUnplaceableJobs(t *testing.T) {
	clusters := filepath.Join(t.TempDir(), "clusters.yaml")
	if err := os.WriteFile(clusters, []byte("aws:\n- name: build01\n  capabilities: [arm64]\n  blocked: true\n- name: build03\ngcp:\n- name: build02\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := planArgs()
	for i := range args {
		if args[i] == "--cluster-config" {
			args[i+1] = clusters
		}
	}
	stdout, _, err := runPlanTest(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"1 unplaceable (no usable cluster meets what they need; none is sent to a cluster that lacks it):",
		"pull-ci-org-repo-main-e2e-arm64: no usable cluster meets capabilities [arm64]; left on its job config's cluster",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("plan output lacks %q:\n%s", want, stdout)
		}
	}
}

// TestPlanUnknownFields: plan reads a cluster config with ipCapacity (a key
// ci-tools adds), names it on stderr and plans as if it were absent;
// --strict refuses it, naming file and field.
func TestPlanUnknownFields(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(planTestdata, "clusters.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	clusters := filepath.Join(t.TempDir(), "_clusters.yaml")
	withIP := strings.Replace(string(data), "- name: build01\n", "- name: build01\n  ipCapacity: 40\n", 1)
	if err := os.WriteFile(clusters, []byte(withIP), 0o644); err != nil {
		t.Fatal(err)
	}
	field := "cluster config " + clusters + ": aws[0].ipCapacity"

	stdout, stderr, err := runPlanTest(t, planArgs("--cluster-config", clusters)...)
	if err != nil {
		t.Fatalf("plan refused a cluster config with ipCapacity: %v", err)
	}
	if !strings.Contains(stderr, field) || !strings.Contains(stdout, "9 jobs") {
		t.Errorf("plan does not name %q on stderr or did not plan:\nstdout:\n%s\nstderr:\n%s", field, stdout, stderr)
	}

	_, _, err = runPlanTest(t, planArgs("--cluster-config", clusters, "--strict")...)
	if !errors.Is(err, config.ErrUnknownFields) || !strings.Contains(fmt.Sprint(err), field) {
		t.Errorf("plan --strict = %v, want a refusal naming %q", err, field)
	}
	if _, _, err := runPlanTest(t, planArgs("--strict")...); err != nil {
		t.Errorf("plan --strict refused configs without unknown keys: %v", err)
	}
}
