package dispatch

import (
	"testing"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/config"
)

func TestBuildFarmConfig(t *testing.T) {
	e := newEnv(t)
	d := e.newDispatcher(e.options())
	e.dispatch(d)
	out, err := d.BuildFarmConfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.ParseDispatcher("regenerated.yaml", out)
	if err != nil {
		t.Fatalf("the regenerated config does not load: %v\n%s", err, out)
	}
	// Every file of a balanced job is in the section, under its job's cluster.
	files := map[string]string{}
	for _, clusters := range cfg.BuildFarm {
		for cluster, bf := range clusters {
			for _, f := range bf.Filenames {
				files[f] = cluster
			}
		}
	}
	unit := mustLookup(t, d, "pull-ci-org-repo-main-unit")
	if got := files["org-repo-main-presubmits.yaml"]; got != unit.Cluster {
		t.Errorf("buildFarm puts org-repo-main-presubmits.yaml on %q, the table has its balanced jobs on %s\n%s", got, unit.Cluster, out)
	}
	// The rest of the config is the one in force.
	if cfg.Default != "build01" || len(cfg.Groups["build03"].Jobs) != 1 {
		t.Errorf("regenerated config lost fields:\n%s", out)
	}
	// A config that changed on disk but was not reloaded is not what is rendered.
	writeFile(t, e.dispatcherConfig, "default: build03\n")
	if again, _ := d.BuildFarmConfig(); string(again) != string(out) {
		t.Errorf("rendered a config that is not in force:\n%s", again)
	}
}
