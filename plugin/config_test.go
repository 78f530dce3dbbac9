package plugin

import (
	"strings"
	"testing"
	"time"
)

func TestLoadConfig(t *testing.T) {
	cfg := testConfig(t)
	if cfg.TTL != 72*time.Hour || cfg.DispatcherURL != "http://prowjob-dispatcher:8080" || cfg.DispatcherTokenFile != "/etc/dispatcher-token/token" {
		t.Errorf("got %+v", cfg)
	}
	if _, err := LoadConfig("testdata/missing.yaml"); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: error %v does not name the file", err)
	}
}

func TestParseConfig(t *testing.T) {
	cases := []struct {
		name    string
		yaml    string
		wantTTL time.Duration
		wantErr string
	}{
		{name: "empty config takes the default TTL", yaml: "", wantTTL: DefaultTTL},
		{name: "ttl", yaml: "default_ttl: 24h", wantTTL: 24 * time.Hour},
		{name: "unknown field", yaml: "allowed_user: [alice]", wantErr: `unknown field "allowed_user"`},
		{name: "bad ttl", yaml: "default_ttl: a week", wantErr: `default_ttl "a week"`},
		{name: "negative ttl", yaml: "default_ttl: -1h", wantErr: `default_ttl "-1h": must be positive`},
		{name: "ttl of 1ns", yaml: "default_ttl: 1ns", wantErr: `default_ttl "1ns": under the dispatcher's minimum TTL 1m0s`},
		{name: "ttl of a minute", yaml: "default_ttl: 1m", wantTTL: time.Minute},
		{name: "team without org", yaml: "allowed_teams: [test-platform]", wantErr: `allowed_teams[0] "test-platform": want org/team-slug`},
		{name: "org with a slash", yaml: "allowed_orgs: [openshift/origin]", wantErr: `allowed_orgs[0] "openshift/origin"`},
		{name: "empty user", yaml: `allowed_users: [""]`, wantErr: `allowed_users[0] ""`},
		{name: "the same path for both configs", yaml: "dispatcher_config_path: c.yaml\ncluster_config_path: c.yaml", wantErr: `both "c.yaml"`},
		{name: "a job config dir with a trailing slash", yaml: "job_config_dir: ci-operator/jobs/", wantErr: `job_config_dir "ci-operator/jobs/": want a clean path`},
		{name: "an absolute job config dir", yaml: "job_config_dir: /jobs", wantErr: `job_config_dir "/jobs"`},
		{name: "a job config dir outside the repository", yaml: "job_config_dir: ../jobs", wantErr: `job_config_dir "../jobs"`},
		{name: "a job config dir", yaml: "job_config_dir: prow/jobs", wantTTL: DefaultTTL},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ParseConfig([]byte(tc.yaml))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.TTL != tc.wantTTL {
				t.Errorf("TTL = %v, want %v", cfg.TTL, tc.wantTTL)
			}
		})
	}
}

// TestShippedConfigsLoad loads the plugin configs the repository ships, so an
// example or the manifests' ConfigMap cannot drift from what the plugin accepts.
func TestShippedConfigsLoad(t *testing.T) {
	for _, path := range []string{
		"../docs/examples/plugin.yaml",
		"../manifests/overlays/example/plugin.yaml",
	} {
		cfg, err := LoadConfig(path)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if cfg.DispatcherURL == "" || len(cfg.AllowedOrgs)+len(cfg.AllowedTeams)+len(cfg.AllowedUsers) == 0 {
			t.Errorf("%s: want a dispatcher_url and at least one trust rule, got %+v", path, cfg)
		}
	}
}

// TestConfigPlanPaths: the config files' paths default to the release
// repository's, and a config may name others.
func TestConfigPlanPaths(t *testing.T) {
	cfg, err := ParseConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DispatcherConfigPath != DefaultDispatcherConfigPath || cfg.ClusterConfigPath != DefaultClusterConfigPath || cfg.JobConfigDir != DefaultJobConfigDir {
		t.Errorf("defaults %q, %q, %q", cfg.DispatcherConfigPath, cfg.ClusterConfigPath, cfg.JobConfigDir)
	}
	cfg, err = ParseConfig([]byte("dispatcher_config_path: a/d.yaml\ncluster_config_path: a/c.yaml\njob_config_dir: a/jobs\n"))
	if err != nil || cfg.DispatcherConfigPath != "a/d.yaml" || cfg.ClusterConfigPath != "a/c.yaml" || cfg.JobConfigDir != "a/jobs" {
		t.Errorf("config %+v, error %v", cfg, err)
	}
}
